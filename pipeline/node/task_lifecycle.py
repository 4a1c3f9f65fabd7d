"""A posted task's life after its clients enroll, as the nodes carry it: each epoch from the
clients' training to its finalized round, then the evaluation (the requester reveals its set,
the aggregator proves the final model's accuracy on it, on which the contract pays), then
everyone withdraws. The demo (``pipeline.apps.demo``) runs every step in one process; the
Flower integration (``pipeline.flower``) runs the rounds its own way and settles through
:func:`evaluate`. Each step may take a ``phase`` (``phase(name)`` is a context manager around
its work: the demo times its phases with it); by default nothing is timed."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
from eth_account import Account
from eth_utils import keccak

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.models.digits import accuracy, one_torch_thread
from stakelearn.pipeline.contracts.optimistic import State
from stakelearn.pipeline.contracts.protocol import Protocol
from stakelearn.pipeline.contracts.types import ETHER, ProtocolConfig, TaskStatus, Verification
from stakelearn.pipeline.federation.task import TaskConfig, client_models
from stakelearn.pipeline.node.aggregator import Aggregator, EpochResult, stored_models
from stakelearn.pipeline.node.client import Client
from stakelearn.pipeline.node.proposer import claim_accuracy
from stakelearn.pipeline.node.requester import (
    published_evaluation_set,
    reveal_evaluation_set,
    revealed_evaluation_set,
)
from stakelearn.pipeline.node.run_folder import (
    EVALUATION_FILE,
    PUBLISHED_EVALUATION_FILE,
    STORE_FILE,
    config_from_json,
    load_run,
    model_path,
    round_folder,
    task_circuits,
    updates_folder,
)
from stakelearn.pipeline.node.store import SequencerStore
from stakelearn.prover.accuracy import COMMITMENTS as ACCURACY_COMMITMENTS
from stakelearn.prover.accuracy import (
    AccuracyOutcome,
    accuracy_call_arguments,
    evaluation_set_commitments,
    prove_accuracy,
    verify_accuracy,
)
from stakelearn.prover.circuit import prepare
from stakelearn.prover.onnx_accuracy import OnnxAccuracyCircuit
from stakelearn.prover.onnx_proof import prove_onnx_accuracy

log = logging.getLogger(__name__)

# The deployment a task's nodes deploy (the demo) and attach to (the demo resumed, Flower): the
# defaults but a one-hour unbonding, for trials on a local chain.
PROTOCOL = ProtocolConfig(stake_wei=ETHER, unbonding_seconds=3600, base_fee_wei=ETHER // 100)

Phase = Callable[[str], AbstractContextManager]


def untimed(_name: str) -> AbstractContextManager:
    """A phase nobody times."""
    return nullcontext()


def run_epoch(
    epoch: int,
    config: TaskConfig,
    federation,
    aggregator: Aggregator,
    clients: list[Client],
    out: Path,
    phase: Phase = untimed,
) -> EpochResult:
    """Carry ``epoch`` from whatever stage the aggregator's store has it at to finalized."""
    store = aggregator.store
    stage = store.stage(epoch)
    if stage != "finalized":
        log.info(f"epoch {epoch}/{config.epochs}" + (f" (resuming at stage '{stage}')" if stage else ""))
    if stage is None:
        model_before = model_path(out, epoch - 1)
        global_parameters = np.load(model_before)
        with phase("training"), one_torch_thread():
            log.info(f"  {config.clients} clients train locally ({config.attackers} attack: {config.attack})")
            trained = client_models(federation, global_parameters, epoch)
        with phase("clients: export, commit, sign"):
            signed = [
                c.submit(
                    aggregator.protocol,
                    aggregator.round,
                    aggregator.task_id,
                    epoch,
                    trained[c.index],
                    config.hidden,
                    config.fixed_point,
                    updates_folder(out, epoch),
                )
                for c in clients
            ]
        with phase("aggregator: check and store"):
            log.info("  the aggregator checks every update against its signed commitment")
            aggregator.collect(epoch, model_before, signed)
    if store.stage(epoch) == "collected":
        with phase("proving"):
            aggregator.prove(epoch, round_folder(out, epoch))
    if store.stage(epoch) == "proven":
        with phase("chain"):
            log.info("  submitting the round on chain")
            aggregator.submit(epoch)
    if store.stage(epoch) == "submitted":
        aggregator.finalize(
            epoch, model_path(out, epoch), lambda parameters: accuracy(parameters, federation.test, config.hidden)
        )
        result = aggregator.result(epoch)
        left_out = [i for i in range(config.clients) if i not in result.selected]
        log.info(
            f"  test accuracy {result.accuracy:.3f}; selected {result.selected}; left out {left_out}; "
            f"flagged {result.flagged}; slashed {result.slashed}; gas {result.gas_used:,}"
        )
    return aggregator.result(epoch)


def evaluate(
    protocol: Protocol, run: dict, aggregator, final_model, prepared_accuracy, out: Path, phase: Phase = untimed
) -> dict:
    """Training is over: the requester (the demo's key) reveals its evaluation set's salt and
    commitments on chain and publishes the set in the run folder, then the aggregator proves the
    final model's accuracy on it (:func:`settle_on_accuracy`). Steps the chain shows done are
    skipped (resume)."""
    task_id = run["task_id"]
    published = out / PUBLISHED_EVALUATION_FILE
    if protocol.task(task_id).status == TaskStatus.EVALUATING and not revealed_evaluation_set(protocol, task_id):
        with phase("chain"):
            log.info("the requester reveals its evaluation set's commitments on chain and publishes the set")
            requester = Account.from_key(run["keys"]["requester"])
            reveal_evaluation_set(protocol, requester, task_id, out / EVALUATION_FILE, published)
    return settle_on_accuracy(
        protocol, task_id, aggregator, final_model, prepared_accuracy, out / "accuracy", published, phase
    )


def settle_on_accuracy(
    protocol: Protocol,
    task_id: int,
    account,
    final_model,
    prepared_accuracy,
    folder: Path,
    published: Path,
    phase: Phase = untimed,
) -> dict:
    """The evaluation set is revealed: ``account`` (anyone; the aggregator in practice) reads its
    commitments from the chain and the set the requester published at ``published``, checks that
    they match, proves the accuracy of the final model (``final_model()``: the last round's proven
    aggregate) on it into ``folder`` and submits the proof, on which the contract pays. What the
    chain recorded of it."""
    if protocol.task(task_id).status == TaskStatus.EVALUATING:
        revealed = revealed_evaluation_set(protocol, task_id)
        if revealed is None:
            raise InputError(f"task {task_id}'s requester has not revealed its evaluation set yet: nothing to prove on")
        salt, commitments = revealed
        x, labels = published_evaluation_set(published)
        if (
            len(labels) % prepared_accuracy.circuit.samples
            or evaluation_set_commitments(x, labels, prepared_accuracy) != commitments
        ):
            raise InputError(
                f"{published} is not the evaluation set task {task_id}'s requester revealed: its commitments differ"
            )
        with phase("proving"):
            if folder.exists():  # proven before a crash
                outcome = verify_accuracy(folder)
            else:
                outcome = prove_final_accuracy(final_model(), x, labels, prepared_accuracy.circuit, folder)
        with phase("chain"):
            call = accuracy_call_arguments(folder, prepared_accuracy.vka)
            model_commitment = bytes.fromhex(json.loads((folder / ACCURACY_COMMITMENTS).read_text())["model"])
            if protocol.task_params(task_id).verification == Verification.OPTIMISTIC:
                # Claimed, not submitted: the proof goes on chain only if someone challenges the count.
                claim_accuracy(protocol, account, task_id, salt, call, model_commitment, outcome)
            else:
                log.info("  the aggregator submits the accuracy proof on chain")
                protocol.execute(account, "submitAccuracy", task_id, salt, *call, model_commitment)
    return _proven_accuracy(protocol, task_id, folder)


def prove_final_accuracy(aggregate: np.ndarray, x_int: np.ndarray, labels: np.ndarray, circuit, folder: Path):
    """Prove the final aggregate's accuracy on a revealed set (its inputs as the circuit's
    integers) with the task's accuracy circuit: the digits one, or an ONNX model's, which reads
    its inputs as round(x 2^t) (exact from the integers) and reports the float model's count
    beside the proven one (the aggregate over its weight)."""
    if not isinstance(circuit, OnnxAccuracyCircuit):
        return prove_accuracy(aggregate, x_int, labels, circuit, folder)
    x = (np.asarray(x_int, dtype=np.float64) / 2.0**circuit.input_scale).reshape(len(labels), *circuit.sample_shape)
    floats = np.asarray(aggregate, dtype=np.float64) / (circuit.m * 2.0**circuit.scale_bits)
    return prove_onnx_accuracy(aggregate, x, labels, circuit, folder, float_parameters=floats)


def _proven_accuracy(protocol: Protocol, task_id: int, folder: Path) -> dict:
    """What the chain recorded of the task's accuracy proof and its reveal: the proven count, or
    a set proven out of range (paid in full, no count)."""
    proven = protocol.logs("AccuracyProven", taskId=task_id)
    (reveal,) = protocol.logs("EvaluationSetRevealed", taskId=task_id)
    if proven:
        a = proven[0]["args"]
        claimed = (
            protocol.task_params(task_id).verification == Verification.OPTIMISTIC
            and protocol.rounds.functions.accuracyClaim(task_id).call()[0] == State.FINAL
        )
        how = "claimed (its window passed unchallenged)" if claimed else "proven"
        log.info(
            f"accuracy {how} on chain: {a['correct']} of {a['samples']} correct; "
            f"target {'reached' if a['targetReached'] else 'missed'}"
        )
        outcome = {"correct": a["correct"], "samples": a["samples"], "target_reached": a["targetReached"]}
        transaction = proven[0]["transactionHash"]
    else:
        (unprovable,) = protocol.logs("EvaluationSetUnprovable", taskId=task_id)
        log.info("the evaluation set was proven out of range on chain: the clients are paid in full")
        samples = protocol.task_params(task_id).evaluation_size
        outcome = {"correct": 0, "samples": samples, "target_reached": False, "set_out_of_range": True}
        transaction = unprovable["transactionHash"]
    return {
        **outcome,
        "gas_used": protocol.chain.receipt(transaction)["gasUsed"],
        "folder": str(folder),
        "reveal_gas_used": protocol.chain.receipt(reveal["transactionHash"])["gasUsed"],
    }


def complete_task(protocol: Protocol, run: dict, clients: list[Client]) -> dict:
    """Everyone withdraws the credit the settled task left them; the balances that resulted."""
    requester = Account.from_key(run["keys"]["requester"])
    for account in [requester, *[c.account for c in clients]]:
        if protocol.credit_of(account.address) > 0:
            protocol.execute(account, "withdrawCredit")
    (completed,) = protocol.logs("TaskCompleted", taskId=run["task_id"])
    rewards = {
        e["args"]["account"]: e["args"]["amount"]
        for e in protocol.logs("CreditWithdrawn", from_block=completed["blockNumber"])
    }
    return {
        "rewarded_wei": completed["args"]["rewarded"],
        "refunded_wei": completed["args"]["refunded"],
        "clients": [
            {
                "address": c.account.address,
                "stake_wei": protocol.stake_of(c.account.address),
                "reward_wei": rewards.get(c.account.address, 0),
            }
            for c in clients
        ],
    }


def stakes_over_time(protocol: Protocol, task_id: int, clients: list[str], epochs: int) -> list[list[int]]:
    """Every client's stake after each epoch (row 0: before the first), from ClientSlashed events."""
    taken = np.zeros((epochs + 1, len(clients)), dtype=object)
    for event in protocol.logs("ClientSlashed", taskId=task_id):
        taken[event["args"]["epoch"], clients.index(event["args"]["client"])] += event["args"]["taken"]
    return (protocol.stake_amount() - np.cumsum(taken, axis=0)).tolist()


def final_aggregate(run_dir: Path) -> np.ndarray:
    """The run's last proven aggregate (the global model times m, in fixed-point units),
    recomputed from the aggregator's stored updates."""
    config = config_from_json(load_run(run_dir)["config"])
    store = SequencerStore(run_dir / STORE_FILE)
    try:
        done = [e["epoch"] for e in store.epochs() if e["stage"] in ("submitted", "finalized")]
        if not done:
            raise InputError(f"{run_dir} has no submitted epoch yet: there is no model to evaluate")
        return krum_round(stored_models(store, max(done), config.fixed_point), config.krum).total
    finally:
        store.close()


def prove_run_accuracy(run_dir: Path, evaluation: Path | None, out: Path) -> AccuracyOutcome:
    """Prove the accuracy of a run's final model on an evaluation set (.npz with ``x``, the grey
    levels, and ``y``, the labels; default: the requester's set in the run folder), with the task's circuit."""
    run = load_run(run_dir)
    path = evaluation or run_dir / EVALUATION_FILE
    try:
        with np.load(path) as data:
            pixels, labels = data["x"], data["y"]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not an evaluation set (.npz with 'x' and 'y'): {error}") from None
    config = replace(config_from_json(run["config"]), evaluation_samples=len(labels))
    _, accuracy_circuit = task_circuits(config, run["inner_cols"])
    return prove_accuracy(final_aggregate(run_dir), pixels, labels, accuracy_circuit, out)


def task_status_lines(protocol: Protocol, task_id: int) -> list[str]:
    """Where a task stands, from the chain alone: its status and epochs, its deadline, each
    client's stake and credit, and the proven accuracy once settled."""
    state, params = protocol.task(task_id), protocol.task_params(task_id)
    lines = [
        f"task {task_id}: {state.status.name.lower()}, {state.epochs_run} of {params.max_epochs} epochs run; "
        f"requester {state.requester}; escrow {state.escrow} wei",
        f"shape n={params.n} f={params.f} m={params.m}; target accuracy {params.desired_accuracy_bps / 100:.2f} % "
        f"on {params.evaluation_size} samples; fee {params.fee_per_epoch} wei per epoch",
    ]
    if state.status == TaskStatus.EVALUATING:
        deadline = protocol.tasks.functions.evaluationDeadline(task_id).call()
        revealed = "revealed" if revealed_evaluation_set(protocol, task_id) else "not revealed yet"
        lines.append(f"evaluation set {revealed}; the current step's deadline is {deadline} (chain time)")
    for event in protocol.logs("AccuracyProven", taskId=task_id):
        a = event["args"]
        lines.append(
            f"accuracy proven: {a['correct']} of {a['samples']} correct; target {'reached' if a['targetReached'] else 'missed'}"
        )
    for address in protocol.tasks.functions.clientsOf(task_id).call():
        lines.append(
            f"client {address}: stake {protocol.stake_of(address)} wei, credit {protocol.credit_of(address)} wei"
        )
    return lines


def settle_task(
    protocol: Protocol, task, account, aggregate_path: Path | None, out: Path | None, published: Path | None = None
) -> str:
    """``stakelearn task settle``: after the reveal, prove the final model's accuracy on the set
    the requester published at ``published`` (checked against its revealed commitments) over
    ``aggregate_path`` (the last round's aggregate, checked against the chain's global model
    first) into ``out`` and submit it; after the deadline, settle without a proof."""
    description = task.description
    task_id = description.task_id
    state = protocol.task(task_id)
    if state.status != TaskStatus.EVALUATING:
        raise InputError(f"task {task_id} is {state.status.name.lower()}: only a task in evaluation is settled")
    deadline = protocol.tasks.functions.evaluationDeadline(task_id).call()
    if protocol.chain.latest_timestamp() > deadline:
        protocol.execute(account, "settle", task_id)
        return f"task {task_id} settled without an accuracy proof (its deadline {deadline} passed)"
    if aggregate_path is None or out is None or published is None:
        raise InputError(
            "settling on the accuracy proof needs --aggregate (the last round's aggregate), --evaluation (the set "
            "the requester published) and --out"
        )
    try:
        aggregate = np.load(aggregate_path, allow_pickle=False).astype(np.int64)
    except (OSError, ValueError) as error:
        raise InputError(f"{aggregate_path}: not a .npy aggregate ({error})") from None
    round_ = task.round()
    if aggregate.shape != (round_.d,) or keccak(round_.aggregate_commitment(aggregate)) != state.global_model:
        raise InputError(f"{aggregate_path} is not task {task_id}'s final aggregate: its commitment is not the chain's")
    prepared = prepare(task.accuracy_circuit())
    proven = settle_on_accuracy(protocol, task_id, account, lambda: aggregate, prepared, out, published)
    if proven.get("set_out_of_range"):
        return f"the evaluation set was proven out of range on chain: the clients are paid in full (gas {proven['gas_used']:,})"
    target = "reached" if proven["target_reached"] else "missed"
    return (
        f"accuracy proven on chain: {proven['correct']} of {proven['samples']} correct; target {target} "
        f"(gas {proven['gas_used']:,}; the reveal's {proven['reveal_gas_used']:,})"
    )
