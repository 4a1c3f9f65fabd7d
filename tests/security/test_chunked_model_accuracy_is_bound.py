"""A model aggregated by a round proven in chunks gets its accuracy proven over the same chunks.

The accuracy circuit then takes the model as K committed inputs at the chunk circuit's logrows,
so the accuracy proof carries the very K commitments the chunk proofs made of the claimed sum;
AccuracyVerifier chains them as ChunkedRoundVerifier chains the aggregate's and compares the
chain with the global model the last round recorded. Replayed here with real proofs: the
aggregator proving the accuracy of a better model than the one the round aggregated, or of the
aggregate's chunks in another order, is refused on chain."""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from web3.logs import DISCARD

from stakelearn.circuits.accuracy import MODEL_LENGTH, correct_count
from stakelearn.circuits.krum import krum_round
from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import check_task_verifiers, evaluation_commitment
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.signing import signed_record
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.pipeline.contracts.verifiers import deploy_accuracy_verifier, verify_accuracy_on_chain
from stakelearn.pipeline.node.aggregator import submit_round
from stakelearn.pipeline.node.client import sign_update_commitment
from stakelearn.pipeline.node.signer import SlashingProtection
from stakelearn.prover.accuracy import (
    accuracy_call_arguments,
    batch_folder,
    evaluation_set_commitments,
    prove_accuracy,
    verify_accuracy,
)
from stakelearn.prover.accuracy_circuit import paired_chunked_circuits
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit, chunk_root
from stakelearn.prover.chunked_round import prove_chunked_round
from stakelearn.prover.circuit import prepare
from stakelearn.prover.commitments import proof_commitments
from stakelearn.prover.rounds import ChunkedRound
from stakelearn.prover.steps import PROOF
from stakelearn.verifier_contracts.build import load_artifact

from ..verifier_contracts.world import make_world

N, F, M, CHUNK, MAX_INT, SAMPLES = 5, 1, 3, 256, 128, 8  # 650 parameters in 3 chunks
SALT = keccak(text="the requester's salt")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data.astype(np.int64), data.target.astype(np.int64)


@pytest.fixture(scope="module")
def updates(digits) -> np.ndarray:
    """Five clients' quantized softmax models: four near a trained one, client 4 its negation."""
    pixels, labels = digits
    trained = LogisticRegression(max_iter=300).fit(pixels[SAMPLES:] / 16, labels[SAMPLES:])
    model = np.concatenate([trained.coef_.ravel(), trained.intercept_])
    quantized = np.round(model / np.abs(model).max() * 100).astype(np.int64)
    rng = np.random.default_rng(3)
    rows = quantized + rng.integers(-4, 5, size=(N, MODEL_LENGTH))
    rows[4] = -quantized
    return np.clip(rows, -MAX_INT, MAX_INT)


@dataclass
class ChunkedTask:
    world: object
    task_id: int
    chunk: object  # prepared chunk circuit
    combine: object
    accuracy: object  # prepared accuracy circuit, taking the model in the chunk circuit's chunks
    folder: Path  # the round folder and the accuracy folder
    aggregate: np.ndarray
    outcome: object
    commitments: dict  # the round's commitments.json
    pixels: np.ndarray  # the requester's evaluation set
    labels: np.ndarray


@pytest.fixture(scope="module")
def task(tmp_path_factory, small_circuit, proven_round, small_accuracy, updates, digits) -> ChunkedTask:
    """A task proven in chunks, on the protocol's own reusable verifier with a pair governance
    approved: its clients check the verifiers and enroll, sign their chunk roots for
    epoch 1, the aggregator proves the round in chunks and the accuracy of its aggregate."""
    world = make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy)
    chunk_circuit, accuracy_circuit = paired_chunked_circuits(ChunkCircuit(N, F, M, CHUNK, MAX_INT), SAMPLES)
    chunk, accuracy = prepare(chunk_circuit), prepare(accuracy_circuit)
    combine = prepare(CombineCircuit(N, F, M, MODEL_LENGTH, MAX_INT))
    reusable, tasks = world.protocol.round_verifier.verifier, world.protocol.tasks
    chunked = ChunkedRound(chunk, MODEL_LENGTH, combine=combine)
    round_verifier = deploy_round_verifier(world.chain, chunked, reusable)
    accuracy_verifier = deploy_accuracy_verifier(world.chain, accuracy, reusable)
    pair = (round_verifier.contract.address, accuracy_verifier.address)
    world.chain.execute(world.chain.payer, tasks, "approveVerifiers", *pair)
    pixels, labels = digits
    set_commitments = evaluation_set_commitments(pixels[:SAMPLES], labels[:SAMPLES], accuracy)
    params = replace(
        world.params(epochs=1, verifiers=pair, evaluation=evaluation_commitment(SALT, set_commitments)),
        evaluation_size=SAMPLES,
        desired_accuracy_bps=5_000,
    )
    world.send(
        world.requester, tasks, "createTask", params.as_abi(), value=world.protocol.config.base_fee_wei + params.escrow
    )
    task_id = tasks.functions.taskCount().call()
    check_task_verifiers(world.protocol, task_id, chunked, accuracy)  # each client, before it enrolls
    signed = []
    protection = SlashingProtection(tmp_path_factory.mktemp("signers") / "protection.sqlite")
    for slot, (client, row) in enumerate(zip(world.clients, updates)):
        world.send(client, tasks, "enroll", task_id)
        commitment, signature = sign_update_commitment(
            client, row, slot, chunked, world.chain.chain_id, tasks.address, task_id, 1, protection
        )
        signed.append(signed_record(slot, client.address, commitment, signature))
    folder = tmp_path_factory.mktemp("chunked-task")
    prove_chunked_round(updates, chunk_circuit, folder / "round", signed=signed)
    aggregate = krum_round(updates, chunk_circuit.params).total
    outcome = prove_accuracy(aggregate, pixels[:SAMPLES], labels[:SAMPLES], accuracy_circuit, folder / "accuracy")
    commitments = json.loads((folder / "round" / "commitments.json").read_text())
    evaluation = pixels[:SAMPLES], labels[:SAMPLES]
    return ChunkedTask(world, task_id, chunk, combine, accuracy, folder, aggregate, outcome, commitments, *evaluation)


def test_the_accuracy_proof_commits_the_rounds_aggregate(task):
    assert task.accuracy.circuit.model_parts == 3
    # the root of the proof's three model commitments is the aggregate's chunk root
    assert task.outcome.model_commitment == task.commitments["aggregate"]
    proof = bytes(json.loads((batch_folder(task.folder / "accuracy", 0) / PROOF).read_text())["proof"])
    assert [c.hex() for c in proof_commitments(proof, 3)] == task.commitments["aggregate_chunks"]
    expected = correct_count(task.aggregate, task.pixels, task.labels)
    assert task.outcome.correct == expected > SAMPLES // 2
    assert verify_accuracy(task.folder / "accuracy").correct == expected  # a third party, with ezkl
    assert verify_accuracy_on_chain(task.folder / "accuracy", Chain.embedded()) > 0  # and on a fresh EVM


def test_a_chunked_task_pays_its_clients_on_the_proven_accuracy(task, updates):
    """The round lands (chunk proofs staged, then the combine proof), the requester reveals its
    set, and the accuracy proof over the chunked global model settles the task."""
    world, tasks = task.world, task.world.protocol.tasks
    submit_round(world.protocol, world.clients[0], task.task_id, 1, task.folder / "round")
    state = world.protocol.task(task.task_id)
    assert state.global_model == keccak(bytes.fromhex(task.commitments["aggregate"]))
    if state.status == TaskStatus.ACTIVE:
        world.send(world.requester, tasks, "endTraining", task.task_id)
    revealed = b"".join(bytes.fromhex(c) for c in task.outcome.set_commitments)
    world.send(world.requester, tasks, "revealEvaluationSet", task.task_id, SALT, revealed)
    receipt = world.send(world.clients[0], tasks, "submitAccuracy", task.task_id, SALT, *accuracy_args(task))
    (event,) = tasks.events.AccuracyProven().process_receipt(receipt, errors=DISCARD)
    assert (event["args"]["correct"], event["args"]["targetReached"]) == (task.outcome.correct, True)
    selected = krum_round(updates, task.chunk.circuit.params).mask
    assert not selected[4]  # the outlier is left out and flagged: every client but it is paid
    assert [credit > 0 for credit in world.credits()] == [True] * 4 + [False]
    assert world.balances_add_up()


def accuracy_args(task, folder=None, model_commitment: bytes | None = None) -> tuple:
    folder = folder or task.folder / "accuracy"
    proof, instances, words = accuracy_call_arguments(folder, task.accuracy.vka)
    model = model_commitment or bytes.fromhex(task.commitments["aggregate"])
    return proof, instances, words, model


def accuracy_revert(task, folder=None, model_commitment: bytes | None = None) -> str | None:
    world = task.world
    contract = world.chain.contract(
        world.protocol.task_params(task.task_id).accuracy_verifier, load_artifact("AccuracyVerifier").abi
    )
    return world.chain.revert_name(
        world.chain.payer, contract, "verifyAccuracy", *accuracy_args(task, folder, model_commitment)
    )


def test_a_better_model_than_the_aggregate_is_refused(task, updates, tmp_path):
    """The aggregator proves the accuracy of another model (an honest client's, scaled like an
    aggregate) and claims it for the round's global model."""
    other = prove_accuracy(M * updates[0], task.pixels, task.labels, task.accuracy.circuit, tmp_path / "other")
    assert other.model_commitment != task.commitments["aggregate"]
    assert accuracy_revert(task, tmp_path / "other") == "AccuracyVerifier__CommitmentMismatch"
    assert accuracy_revert(task, tmp_path / "other", bytes.fromhex(other.model_commitment)) is None  # a valid proof


def test_the_aggregates_chunks_in_another_order_are_refused(task):
    chunks = [bytes.fromhex(c) for c in task.commitments["aggregate_chunks"]]
    swapped = chunk_root([chunks[1], chunks[0], chunks[2]])
    assert accuracy_revert(task, model_commitment=swapped) == "AccuracyVerifier__CommitmentMismatch"
    flat = keccak(b"".join(chunks)) + (3).to_bytes(32, "big")  # a flat hash is not the root
    assert accuracy_revert(task, model_commitment=flat) == "AccuracyVerifier__CommitmentMismatch"
    assert accuracy_revert(task) is None


def test_a_client_with_other_circuits_refuses_to_enroll(task):
    """The task's verifiers are not those of the circuits a client commits and proves with: a
    client expecting one-proof rounds, or the accuracy of a model taken whole, does not enroll."""
    world = task.world
    with pytest.raises(StakeLearnError, match="round verifier .* not the protocol's RoundVerifier"):
        check_task_verifiers(world.protocol, task.task_id, world.round, task.accuracy)
    with pytest.raises(StakeLearnError, match="accuracy verifier .* not the protocol's AccuracyVerifier"):
        check_task_verifiers(
            world.protocol, task.task_id, ChunkedRound(task.chunk, MODEL_LENGTH, combine=task.combine), world.accuracy
        )
