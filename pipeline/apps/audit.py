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

from pathlib import Path

import numpy as np
from eth_abi import encode
from eth_utils import keccak, to_hex

from stakelearn.circuits.krum import absent_distance, krum_round
from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import (
    Protocol,
    attach_protocol,
    check_task_verifiers,
    check_verifiers_approved,
)
from stakelearn.pipeline.contracts.signing import ABSENT_SIGNATURE, SIGNATURE_BYTES
from stakelearn.pipeline.contracts.types import TaskParams
from stakelearn.pipeline.contracts.verifiers import absent_commitment_hash, check_round
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.node.client import quantized_model
from stakelearn.pipeline.node.requester import model_hash
from stakelearn.pipeline.node.run_folder import RUN_FILE, STORE_FILE, config_from_json, load_run, run_round
from stakelearn.pipeline.node.store import SequencerStore
from stakelearn.prover.rounds import Round

COMMITMENT_BYTES = 64


def audit_chain(protocol: Protocol, task_id: int, circuits: tuple | None = None) -> tuple[list[str], list[dict]]:
    """Problems found in the task's on-chain history, and its rounds as rebuilt from events.
    ``circuits`` (the task's round and prepared accuracy circuit, when known) lets the audit check the
    verifiers' code, not only that the protocol approved them."""
    chain = protocol.chain
    problems: list[str] = []
    created = protocol.logs("TaskCreated", taskId=task_id)
    if not created:
        return [f"task {task_id} was never created on this contract"], []
    params = TaskParams.from_abi(created[0]["args"]["params"])
    try:
        if circuits is not None:
            check_task_verifiers(protocol, task_id, *circuits)
        else:
            check_verifiers_approved(protocol, task_id, params)
    except StakeLearnError as error:
        problems.append(str(error).replace("; do not enroll", ""))
    started = protocol.logs("TaskStarted", taskId=task_id)
    if not started:
        return problems + [f"task {task_id} was never started"], []
    clients = list(started[0]["args"]["clients"])
    n = len(clients)
    vacant = absent_commitment_hash(chain, params.verifier)
    posted = {
        (e["args"]["epoch"], clients.index(e["args"]["client"])): bytes(e["args"]["commitment"])
        for e in protocol.logs("CommitmentPosted", taskId=task_id)
    }
    slashed = protocol.logs("ClientSlashed", taskId=task_id)
    events = sorted(protocol.logs("RoundSubmitted", taskId=task_id), key=lambda e: e["args"]["epoch"])
    epochs = [e["args"]["epoch"] for e in events]
    if epochs != list(range(1, len(events) + 1)):
        problems.append(f"epochs on chain are {epochs}, expected 1..{len(events)} each exactly once")
    root, model, rounds = b"\0" * 32, params.initial_model, []
    for event in events:
        a, epoch = event["args"], event["args"]["epoch"]
        commitments, signatures = bytes(a["commitments"]), bytes(a["signatures"])
        if len(commitments) != COMMITMENT_BYTES * (n + 1) or len(signatures) != SIGNATURE_BYTES * n:
            problems.append(f"epoch {epoch}: batch sizes do not match n={n}")
            continue
        parts = [commitments[COMMITMENT_BYTES * i : COMMITMENT_BYTES * (i + 1)] for i in range(n + 1)]
        absent = [i for i in range(n) if a["absentMask"] >> i & 1]
        for i in range(n):
            signature = signatures[SIGNATURE_BYTES * i : SIGNATURE_BYTES * (i + 1)]
            if (epoch, i) in posted:
                if parts[i] != posted[epoch, i]:
                    problems.append(
                        f"epoch {epoch}: client {i} posted its commitment on chain, the batch holds another"
                    )
            elif i in absent:
                if signature != ABSENT_SIGNATURE or keccak(parts[i]) != vacant:
                    problems.append(f"epoch {epoch}: client {i} is marked absent but its slot is not the absent one")
            elif (signer := protocol.recover_signer(task_id, epoch, parts[i], signature)) != clients[i]:
                problems.append(f"epoch {epoch}: client {i}'s commitment is signed by {signer}, not {clients[i]}")
        _, call = protocol.tasks.decode_function_input(chain.transaction(event["transactionHash"])["input"])
        submitted = call["round"]
        if submitted["previousModel"] != model:
            problems.append(
                f"epoch {epoch}: starts from model {to_hex(submitted['previousModel'])}, "
                f"the previous epoch ended at {to_hex(model)}"
            )
        if bytes(submitted["commitments"]) != commitments:
            problems.append(f"epoch {epoch}: the event's commitments differ from the transaction's")
        check = check_round(
            chain, params.verifier, submitted["proof"], submitted["instances"], submitted["vka"], commitments
        )
        if not check.ok:  # the verifier reverts: the proof no longer checks
            problems.append(f"epoch {epoch}: the proof does not verify ({check.reason})")
        elif (check.selected_mask, check.absent_mask) != (a["selectedMask"], a["absentMask"]):
            problems.append(
                f"epoch {epoch}: the proof selects {check.selected_mask:b} with {check.absent_mask:b} absent, "
                f"the event says {a['selectedMask']:b} with {a['absentMask']:b} absent"
            )
        model = keccak(parts[n])
        if a["globalModel"] != model:
            problems.append(
                f"epoch {epoch}: global model {to_hex(a['globalModel'])} is not the hash of the aggregate commitment"
            )
        root = keccak(
            encode(
                ["bytes32", "uint256", "uint256", "bytes32", "bytes32", "uint256", "uint256", "bytes32"],
                [
                    root,
                    task_id,
                    epoch,
                    keccak(commitments),
                    keccak(signatures),
                    a["flaggedMask"],
                    a["absentMask"],
                    model,
                ],
            )
        )
        if a["stateRoot"] != root:
            problems.append(
                f"epoch {epoch}: state root {to_hex(a['stateRoot'])} differs from the rebuilt {to_hex(root)}"
            )
        rounds.append(
            {
                "epoch": epoch,
                "commitments": [p.hex() for p in parts],
                "signatures": signatures,
                "selected_mask": a["selectedMask"],
                "tx_hash": to_hex(event["transactionHash"]),
                "absent": absent,
                "flagged": [i for i in range(n) if a["flaggedMask"] >> i & 1],
                "slashed": sorted(clients.index(e["args"]["client"]) for e in slashed if e["args"]["epoch"] == epoch),
            }
        )
    state = protocol.task(task_id)
    if (state.epochs_run, state.global_model, state.state_root) != (len(events), model, root):
        problems.append("the task's current state (epochs, model, root) is not the end of its rebuilt history")
    return problems, rounds


def audit_run(run_dir: Path, protocol: Protocol, round_: Round, rounds: list[dict]) -> list[str]:
    """Problems found comparing an aggregator's run folder with the rounds rebuilt from the chain."""
    run = load_run(run_dir)
    config = config_from_json(run["config"])
    params, max_int = round_.params, round_.prepared.max_int
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
    print(
        "audit passed: signatures, proofs, model commitments and state roots all check"
        if not problems
        else f"audit found {len(problems)} inconsistencies"
    )
    return problems
