"""Rebuild a task's MPS history from chain events alone and re-check it; optionally compare an
aggregator's run folder (store, updates, models) with it.

From the chain: the task's verifiers are a pair the protocol approved (and, given the circuits,
exactly the protocol's verifier code for them); every epoch 1..E has exactly one RoundSubmitted
event; each batch's signatures recover to the enrolled clients (EIP-712 over chain id,
contract, task, epoch, commitment), each unsigned slot holds the absent commitment and each
commitment a client posted itself is in its slot; each proof, read back from its transaction,
still passes the task's RoundVerifier over exactly the posted commitments with the posted
selection; the global model commitments are what the batch implies; the state roots chain
from zero to the task's current root. Skipped (absent) and slashed clients are reported. From a run folder: the store's batches and transaction hashes are the chain's, every
stored update re-commits to its on-chain commitment, the selected updates' sum re-commits to
the on-chain global model commitment, and every stored global model is the previous one plus
the proven mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from eth_abi import encode
from eth_utils import keccak, to_hex

from stakelearn.circuits.krum import absent_distance, krum_round
from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.optimistic import Claim
from stakelearn.pipeline.contracts.protocol import (
    Protocol,
    attach_protocol,
    check_task_verifiers,
    check_verifiers_approved,
)
from stakelearn.pipeline.contracts.signing import ABSENT_SIGNATURE, SIGNATURE_BYTES
from stakelearn.pipeline.contracts.types import TaskParams, Verification
from stakelearn.pipeline.contracts.verifiers import RoundCheck, absent_commitment_hash, check_round
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.node.client import quantized_model
from stakelearn.pipeline.node.run_folder import RUN_FILE, STORE_FILE, config_from_json, load_run, run_round
from stakelearn.pipeline.node.store import SequencerStore
from stakelearn.pipeline.node.task_description import model_hash
from stakelearn.prover.rounds import Round

COMMITMENT_BYTES = 64

Recover = Callable[[int, bytes, bytes], str]  # (epoch, commitment, signature) -> the signer's address


@dataclass(frozen=True)
class ChainRound:
    """One RoundSubmitted event, with what its transaction carried (``submitted``: the Round) and
    what the task's verifier says of its proof today (``check``); both None for a batch of the
    wrong size, which is reported and not read further. An optimistic round's batch and
    previous model come from its final claim (OptimisticRounds' RoundProposed) and it has no
    proof on chain (``check`` None): it stood its challenge window."""

    event: dict
    submitted: dict | None
    check: RoundCheck | None
    scores: tuple[int, ...] = ()  # the raw Krum scores: proven (eager) or claimed and final (optimistic)


@dataclass(frozen=True)
class TaskHistory:
    """What the chain recorded of a started task's rounds, read once; checked by pure functions."""

    task_id: int
    clients: list[str]  # the enrolled clients, in slot order
    vacant: bytes  # the hash of the absent slot's commitment (the task's verifier's)
    posted: dict[tuple[int, int], bytes]  # (epoch, slot): a commitment its client posted on chain itself
    slashed: list  # ClientSlashed events
    rounds: list[ChainRound]  # by epoch


def verifier_problems(protocol: Protocol, task_id: int, params: TaskParams, circuits: tuple | None) -> list[str]:
    """The task's verifiers: a pair the protocol approved and, given the circuits, the protocol's code for them."""
    try:
        if circuits is not None:
            check_task_verifiers(protocol, task_id, *circuits)
        else:
            check_verifiers_approved(protocol, task_id, params)
    except StakeLearnError as error:
        return [str(error).replace("; do not enroll", "")]
    return []


def read_history(protocol: Protocol, task_id: int, params: TaskParams, clients: list[str]) -> TaskHistory:
    """The chain reads the audit checks: events, each well-sized round's transaction and its verifier's answer."""
    chain, n = protocol.chain, len(clients)
    events = sorted(protocol.logs("RoundSubmitted", taskId=task_id), key=lambda e: e["args"]["epoch"])
    claims = final_claims(protocol, task_id) if params.verification == Verification.OPTIMISTIC else {}
    rounds = []
    for event in events:
        submitted = check = None
        scores = ()
        if event["args"]["epoch"] in claims:
            claim = claims[event["args"]["epoch"]]
            event = {
                **event,
                "args": {**event["args"], "commitments": claim.commitments, "signatures": claim.signatures},
            }
            submitted = {"previousModel": claim.previous_model, "commitments": claim.commitments}
            scores = tuple(claim.scores)
        elif batch_parts(event["args"], n) is not None:
            _, call = protocol.tasks.decode_function_input(chain.transaction(event["transactionHash"])["input"])
            submitted = call["round"]
            commitments = bytes(event["args"]["commitments"])
            proof, instances, vka = submitted["proof"], submitted["instances"], submitted["vka"]
            check = check_round(chain, params.verifier, proof, instances, vka, commitments)
            scores = check.scores
        rounds.append(ChainRound(event, submitted, check, scores))
    posted = {
        (e["args"]["epoch"], clients.index(e["args"]["client"])): bytes(e["args"]["commitment"])
        for e in protocol.logs("CommitmentPosted", taskId=task_id)
    }
    slashed = protocol.logs("ClientSlashed", taskId=task_id)
    return TaskHistory(task_id, clients, absent_commitment_hash(chain, params.verifier), posted, slashed, rounds)


def final_claim_events(protocol: Protocol, task_id: int) -> dict[int, dict]:
    """An optimistic task's final claims by epoch: the RoundProposed event whose nonce was finalized."""
    rounds = protocol.rounds
    start = protocol.deployment_block
    final = {e["args"]["nonce"] for e in protocol.chain.logs(rounds.events.RoundFinalized, start, taskId=task_id)}
    return {
        e["args"]["epoch"]: e
        for e in protocol.chain.logs(rounds.events.RoundProposed, start, taskId=task_id)
        if e["args"]["nonce"] in final
    }


def final_claims(protocol: Protocol, task_id: int) -> dict[int, Claim]:
    """An optimistic task's final claims by epoch."""
    return {epoch: Claim.from_abi(e["args"]["claim"]) for epoch, e in final_claim_events(protocol, task_id).items()}


def batch_parts(args: dict, n: int) -> list[bytes] | None:
    """A round event's n + 1 commitments (the clients' then the aggregate's), or None when its
    batch of commitments or signatures is not sized for n clients."""
    commitments, signatures = bytes(args["commitments"]), bytes(args["signatures"])
    if len(commitments) != COMMITMENT_BYTES * (n + 1) or len(signatures) != SIGNATURE_BYTES * n:
        return None
    return [commitments[COMMITMENT_BYTES * i : COMMITMENT_BYTES * (i + 1)] for i in range(n + 1)]


def slot_problems(history: TaskHistory, epoch: int, parts: list[bytes], args: dict, recover: Recover) -> list[str]:
    """Each slot holds its client's own posted commitment, the absent one, or one its client signed."""
    problems, signatures, clients = [], bytes(args["signatures"]), history.clients
    for i in range(len(clients)):
        signature = signatures[SIGNATURE_BYTES * i : SIGNATURE_BYTES * (i + 1)]
        if (epoch, i) in history.posted:
            if parts[i] != history.posted[epoch, i]:
                problems.append(f"epoch {epoch}: client {i} posted its commitment on chain, the batch holds another")
        elif args["absentMask"] >> i & 1:
            if signature != ABSENT_SIGNATURE or keccak(parts[i]) != history.vacant:
                problems.append(f"epoch {epoch}: client {i} is marked absent but its slot is not the absent one")
        elif (signer := recover(epoch, parts[i], signature)) != clients[i]:
            problems.append(f"epoch {epoch}: client {i}'s commitment is signed by {signer}, not {clients[i]}")
    return problems


def transaction_problems(epoch: int, args: dict, submitted: dict, check: RoundCheck, model: bytes) -> list[str]:
    """The transaction starts from the previous epoch's model, carries the event's batch, and its
    proof still verifies with the event's selection."""
    problems = []
    if submitted["previousModel"] != model:
        problems.append(
            f"epoch {epoch}: starts from model {to_hex(submitted['previousModel'])}, "
            f"the previous epoch ended at {to_hex(model)}"
        )
    if bytes(submitted["commitments"]) != bytes(args["commitments"]):
        problems.append(f"epoch {epoch}: the event's commitments differ from the transaction's")
    if check is None:  # optimistic: final after its window, no proof on chain to re-check
        return problems
    if not check.ok:  # the verifier reverts: the proof no longer checks
        problems.append(f"epoch {epoch}: the proof does not verify ({check.reason})")
    elif (check.selected_mask, check.absent_mask) != (args["selectedMask"], args["absentMask"]):
        problems.append(
            f"epoch {epoch}: the proof selects {check.selected_mask:b} with {check.absent_mask:b} absent, "
            f"the event says {args['selectedMask']:b} with {args['absentMask']:b} absent"
        )
    return problems


def next_state_root(root: bytes, task_id: int, args: dict, model: bytes) -> bytes:
    """The state root after a round: the previous one chained with the round's batch and outcome."""
    return keccak(
        encode(
            ["bytes32", "uint256", "uint256", "bytes32", "bytes32", "uint256", "uint256", "bytes32"],
            [
                root,
                task_id,
                args["epoch"],
                keccak(bytes(args["commitments"])),
                keccak(bytes(args["signatures"])),
                args["flaggedMask"],
                args["absentMask"],
                model,
            ],
        )
    )


def round_record(history: TaskHistory, chain_round: ChainRound, parts: list[bytes]) -> dict:
    """A round as the audit rebuilt it from the chain."""
    event = chain_round.event
    a, epoch, n = event["args"], event["args"]["epoch"], len(history.clients)
    return {
        "epoch": epoch,
        "commitments": [p.hex() for p in parts],
        "signatures": bytes(a["signatures"]),
        "selected_mask": a["selectedMask"],
        "tx_hash": to_hex(event["transactionHash"]),
        "block": event["blockNumber"],
        "scores": list(chain_round.scores),
        "absent": [i for i in range(n) if a["absentMask"] >> i & 1],
        "flagged": [i for i in range(n) if a["flaggedMask"] >> i & 1],
        "slashed": sorted(
            history.clients.index(e["args"]["client"]) for e in history.slashed if e["args"]["epoch"] == epoch
        ),
    }


def check_history(
    history: TaskHistory, initial_model: bytes, recover: Recover
) -> tuple[list[str], list[dict], bytes, bytes]:
    """Problems in the task's rounds, the rounds rebuilt, and the global model and state root they end at."""
    epochs = [r.event["args"]["epoch"] for r in history.rounds]
    problems = []
    if epochs != list(range(1, len(epochs) + 1)):
        problems.append(f"epochs on chain are {epochs}, expected 1..{len(epochs)} each exactly once")
    root, model, rounds = b"\0" * 32, initial_model, []
    for chain_round in history.rounds:
        a, epoch = chain_round.event["args"], chain_round.event["args"]["epoch"]
        parts = batch_parts(a, len(history.clients))
        if parts is None:
            problems.append(f"epoch {epoch}: batch sizes do not match n={len(history.clients)}")
            continue
        problems += slot_problems(history, epoch, parts, a, recover)
        problems += transaction_problems(epoch, a, chain_round.submitted, chain_round.check, model)
        model = keccak(parts[-1])
        if a["globalModel"] != model:
            problems.append(
                f"epoch {epoch}: global model {to_hex(a['globalModel'])} is not the hash of the aggregate commitment"
            )
        root = next_state_root(root, history.task_id, a, model)
        if a["stateRoot"] != root:
            problems.append(
                f"epoch {epoch}: state root {to_hex(a['stateRoot'])} differs from the rebuilt {to_hex(root)}"
            )
        rounds.append(round_record(history, chain_round, parts))
    return problems, rounds, model, root


def audit_chain(protocol: Protocol, task_id: int, circuits: tuple | None = None) -> tuple[list[str], list[dict]]:
    """Problems found in the task's on-chain history, and its rounds as rebuilt from events.
    ``circuits`` (the task's round and prepared accuracy circuit, when known) lets the audit check the
    verifiers' code, not only that the protocol approved them."""
    created = protocol.logs("TaskCreated", taskId=task_id)
    if not created:
        return [f"task {task_id} was never created on this contract"], []
    params = TaskParams.from_abi(created[0]["args"]["params"])
    problems = verifier_problems(protocol, task_id, params, circuits)
    started = protocol.logs("TaskStarted", taskId=task_id)
    if not started:
        return problems + [f"task {task_id} was never started"], []
    history = read_history(protocol, task_id, params, list(started[0]["args"]["clients"]))
    events = [r.event for r in history.rounds]
    found, rounds, model, root = check_history(history, params.initial_model, partial(protocol.recover_signer, task_id))
    problems += found
    state = protocol.task(task_id)
    if (state.epochs_run, state.global_model, state.state_root) != (len(events), model, root):
        problems.append("the task's current state (epochs, model, root) is not the end of its rebuilt history")
    return problems, rounds


def audit_run(run_dir: Path, protocol: Protocol, round_: Round, rounds: list[dict]) -> list[str]:
    """Problems found comparing an aggregator's run folder with the rounds rebuilt from the chain."""
    run = load_run(run_dir)
    config = config_from_json(run["config"])
    params, max_int = round_.params, round_.prepared.circuit.max_int
    problems = []
    initial = np.load(run_dir / "models" / run["initial_model"])
    if model_hash(initial) != protocol.task_params(run["task_id"]).initial_model:
        problems.append("the stored initial model is not the one the task was created with")
    store = SequencerStore(run_dir / STORE_FILE)
    try:
        for chain_round in rounds:
            epoch = chain_round["epoch"]
            record, updates = store.epoch(epoch), store.updates(epoch)
            if record is None or record["stage"] not in ("submitted", "finalized"):
                problems.append(f"epoch {epoch}: on chain, but the store does not have it as submitted")
                continue
            if record["tx_hash"] != chain_round["tx_hash"]:
                problems.append(f"epoch {epoch}: the store's transaction {record['tx_hash']} is not the chain's")
            if any(u.commitment != chain_round["commitments"][u.client] for u in updates):
                problems.append(f"epoch {epoch}: the store's commitments differ from the chain's")
            if any(
                bytes.fromhex(u.signature)
                != chain_round["signatures"][SIGNATURE_BYTES * u.client : SIGNATURE_BYTES * (u.client + 1)]
                for u in updates
            ):
                problems.append(f"epoch {epoch}: the store's signatures differ from the chain's")
            quantized = np.zeros((params.n, config.dimension), dtype=np.int64)
            absent = np.isin(np.arange(params.n), chain_round["absent"])
            for u in updates:
                quantized[u.client] = quantized_model(store.resolve(u.path), config.fixed_point)
            for i, commitment in enumerate(round_.slot_commitments(quantized, absent)):
                if commitment.hex() != chain_round["commitments"][i]:
                    problems.append(f"epoch {epoch}: client {i}'s stored update does not match its on-chain commitment")
            selected = np.array([(chain_round["selected_mask"] >> i) & 1 for i in range(params.n)], dtype=bool)
            total = quantized[selected].sum(axis=0)
            if round_.aggregate_commitment(total).hex() != chain_round["commitments"][-1]:
                problems.append(
                    f"epoch {epoch}: the stored updates' selected sum does not match the on-chain model commitment"
                )
            vacant = absent_distance(params, config.dimension, max_int)
            proven = krum_round(quantized, params, absent, vacant).selected
            if proven != [int(i) for i in np.flatnonzero(selected)]:
                problems.append(f"epoch {epoch}: Krum over the stored updates does not give the proven selection")
            if record["model_after"] is not None:
                after = np.load(store.resolve(record["model_after"]))
                if not np.array_equal(after, next_global(total, params.weight, config.fixed_point)):
                    problems.append(f"epoch {epoch}: the stored global model is not the mean of the proven selection")
    finally:
        store.close()
    return problems


def run_audit(rpc_url: str, task_id: int, contract: str | None = None, run_dir: Path | None = None) -> list[str]:
    """Audit and print the findings; return the problems (empty when all checks pass)."""
    chain = Chain.rpc(rpc_url)
    run = None
    if run_dir is not None:
        if not (run_dir / RUN_FILE).is_file():
            raise InputError(f"{run_dir} is not a run folder ({RUN_FILE} is missing)")
        run = load_run(run_dir)
    if contract is None and run is None:
        raise InputError("name the protocol contract with --contract ADDRESS (or give --run with a run.json)")
    protocol = attach_protocol(chain, {"protocol": contract} if contract is not None else run["addresses"])
    circuits = run_round(run) if run is not None else None
    problems, rounds = audit_chain(protocol, task_id, circuits)
    print(f"task {task_id} on {chain.name}: {len(rounds)} epochs rebuilt from chain events")
    for chain_round in rounds:
        for what in ("absent", "flagged", "slashed"):
            if chain_round[what]:
                print(f"epoch {chain_round['epoch']}: clients {chain_round[what]} {what}")
    if run is not None:
        problems += audit_run(run_dir, protocol, circuits[0], rounds)
    for problem in problems:
        print(f"INCONSISTENT: {problem}")
    optimistic = rounds and protocol.task_params(task_id).verification == Verification.OPTIMISTIC
    checked = "signatures" if optimistic else "signatures, proofs"
    print(
        f"audit passed: {checked}, model commitments and state roots all check"
        + (" (optimistic rounds: each stood its challenge window; no proof on chain to re-check)" if optimistic else "")
        if not problems
        else f"audit found {len(problems)} inconsistencies"
    )
    return problems
