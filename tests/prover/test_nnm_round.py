"""A proven NNM + Multi-Krum round: proven, checked by a third party from the folder alone and by
the RoundVerifier on the EVM, and bound to what it claims (the mixed weights' sum, the rule)."""

import json

import numpy as np
import pytest

from stakelearn.circuits.krum import KrumParams, krum_round
from stakelearn.errors import ProofError, StakeLearnError
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.round_on_chain import (
    check_with_task_verifier,
    deploy_round_verifier,
    verify_round_on_chain,
)
from stakelearn.pipeline.contracts.verifiers import verify_on_chain
from stakelearn.prover import steps
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.round import COMMITMENTS, circuit_of, load_round, prove_round, verify_round
from stakelearn.prover.rounds import OneProofRound, open_round

from ..conftest import SMALL

NNM_CIRCUIT = RoundCircuit(**{**SMALL, "rule": "nnm-multikrum"})


@pytest.fixture(scope="module")
def nnm_round(tmp_path_factory, small_updates):
    folder = tmp_path_factory.mktemp("nnm") / "round"
    prove_round(small_updates, NNM_CIRCUIT, folder)
    return folder


def commitments_of(folder):
    data = json.loads((folder / COMMITMENTS).read_text())
    return [*data["updates"], data["aggregate"]]


def test_nnm_round_is_proven_and_verified_from_its_folder(nnm_round, small_updates):
    outcome = verify_round(nnm_round)
    reference = krum_round(small_updates, NNM_CIRCUIT.params)
    assert outcome.selected == reference.selected
    assert outcome.scores == reference.scores.tolist()  # the raw scores: the far client stays far
    assert np.argmax(outcome.scores) == 4
    manifest, _, _ = load_round(nnm_round)
    assert circuit_of(manifest) == NNM_CIRCUIT
    assert "nnm-multikrum round" in (nnm_round / "summary.txt").read_text()


def test_nnm_round_verifies_on_the_evm_and_its_verifier_names_the_rule(nnm_round):
    result = verify_round_on_chain(nnm_round, Chain.embedded())
    assert result.ok, result.reason
    deployed = deploy_round_verifier(Chain.embedded(), OneProofRound(prepare(NNM_CIRCUIT)))
    assert deployed.contract.functions.aggregation().call() == NNM_CIRCUIT.params.rule_id == 1


def test_a_multikrum_proof_does_not_pass_the_nnm_verifier(proven_round, small_circuit):
    """Same shape, same outputs layout: the pinned VKA tells the rules apart."""
    deployed = deploy_round_verifier(Chain.embedded(), OneProofRound(prepare(NNM_CIRCUIT)))
    result = verify_on_chain(
        deployed, proven_round / steps.PROOF, prepare(small_circuit).vka, commitments_of(proven_round)
    )
    assert not result.ok and result.reason == "RoundVerifier__WrongCircuit"


def test_nnm_round_rejects_a_tampered_proof_and_a_swapped_aggregate(nnm_round, proven_round, tmp_path):
    deployed = deploy_round_verifier(Chain.embedded(), OneProofRound(prepare(NNM_CIRCUIT)))
    vka = prepare(NNM_CIRCUIT).vka
    proof = json.loads((nnm_round / steps.PROOF).read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1
    write_json_atomic(tampered := tmp_path / "proof.json", proof)
    assert verify_on_chain(deployed, tampered, vka, commitments_of(nnm_round)).reason == "RoundVerifier__ProofRejected"
    # the plain Multi-Krum aggregate's commitment in place of the mixed one
    swapped = [*commitments_of(nnm_round)[:-1], commitments_of(proven_round)[-1]]
    result = verify_on_chain(deployed, nnm_round / steps.PROOF, vka, swapped)
    assert result.reason == "RoundVerifier__CommitmentMismatch"


def test_nnm_aggregate_is_the_mixed_weights_sum(small_updates):
    reference = krum_round(small_updates, KrumParams(5, 1, 3, "nnm-multikrum"))
    assert reference.weights.sum() == 3 * 4  # m (n - f)
    np.testing.assert_array_equal(reference.total, reference.weights @ small_updates)


def test_an_nnm_task_records_its_rule_and_flags_on_the_raw_scores(nnm_round, small_accuracy):
    """On the protocol: a task created with aggregation 1 takes the NNM round; the chain flags
    from the round's raw Krum scores against the reference score, as federation.rules does off chain."""
    from eth_utils import keccak
    from web3.logs import DISCARD

    from stakelearn.pipeline.contracts.types import TaskParams
    from stakelearn.pipeline.federation.rules import PenaltyPolicy, flagged

    from ..verifier_contracts.world import make_world

    policy = PenaltyPolicy()
    world = make_world(Chain.embedded(), prepare(NNM_CIRCUIT), nnm_round, small_accuracy, policy)
    task_id = world.start_task(aggregation=1)
    params = TaskParams.from_abi(world.protocol.tasks.functions.taskParams(task_id).call())
    assert params.aggregation == 1
    receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    outcome = verify_round(nnm_round)
    expected = flagged(outcome.scores, policy.outlier_bps, NNM_CIRCUIT.f)
    assert event["args"]["flaggedMask"] == sum(1 << i for i, flag in enumerate(expected) if flag) == 1 << 4
    assert event["args"]["selectedMask"] == sum(1 << i for i in outcome.selected)
    assert event["args"]["globalModel"] == keccak(bytes.fromhex(commitments_of(nnm_round)[-1]))


def test_a_task_verifier_of_another_rule_refuses_the_folder_by_its_pinned_digest(proven_round):
    """An aggregator cannot pass a Multi-Krum round off as the NNM task's: same shape, but the
    task's RoundVerifier pins another circuit, and the check (eth_calls only) says so."""
    chain = Chain.embedded()
    nnm_verifier = deploy_round_verifier(chain, OneProofRound(prepare(NNM_CIRCUIT))).contract.address
    nonce = chain.w3.eth.get_transaction_count(chain.payer_address)
    with pytest.raises(StakeLearnError, match="is not the one the RoundVerifier at .* pins"):
        check_with_task_verifier(chain, nnm_verifier, proven_round)
    assert chain.w3.eth.get_transaction_count(chain.payer_address) == nonce  # nothing was sent
    own_verifier = deploy_round_verifier(chain, open_round(proven_round)).contract.address
    assert check_with_task_verifier(chain, own_verifier, proven_round).submitted_by == "verifyRound"


def test_a_round_refuses_a_folder_proven_with_other_circuits(nnm_round, proven_round):
    """A task's round (the aggregator resuming, `submit`) verifies only folders of its own circuits."""
    with pytest.raises(ProofError, match="was proven with circuit"):
        OneProofRound(prepare(NNM_CIRCUIT)).verify(proven_round)
    assert OneProofRound(prepare(NNM_CIRCUIT)).verify(nnm_round).mask == open_round(nnm_round).verify(nnm_round).mask
