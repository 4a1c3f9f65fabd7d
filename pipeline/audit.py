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

import json
from pathlib import Path

import numpy as np
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3

from stakelearn.circuits.krum import krum_round, tagged_inputs
from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain import Chain
from stakelearn.pipeline.federation import next_global
from stakelearn.pipeline.protocol import Protocol, check_task_verifiers
from stakelearn.pipeline.roles import quantized_model
from stakelearn.verifier_contracts.build import load_artifact

COMMITMENT, SIGNATURE = 64, 65


def _hex(value: bytes) -> str:
    return Web3.to_hex(value)


def audit_chain(protocol: Protocol, task_id: int, circuits: tuple | None = None) -> tuple[list[str], list[dict]]:
    """Problems found in the task's on-chain history, and its rounds as rebuilt from events.
    ``circuits`` (the prepared round and accuracy circuits, when known) lets the audit check the
    verifiers' code, not only that the protocol approved them."""
    tasks, chain = protocol.tasks, protocol.chain
    problems: list[str] = []
    created = tasks.events.TaskCreated().get_logs(from_block=0, argument_filters={"taskId": task_id})
    if not created:
        return [f"task {task_id} was never created on this contract"], []
    params = created[0]["args"]["params"]
    try:
        if circuits is not None:
            check_task_verifiers(protocol, task_id, *circuits)
        elif tasks.functions.approvedAccuracyVerifier(params["verifier"]).call() != params["accuracyVerifier"]:
            raise StakeLearnError(f"task {task_id}: its verifiers are not a pair the protocol approved")
    except StakeLearnError as error:
        problems.append(str(error).replace("; do not enroll", ""))
    started = tasks.events.TaskStarted().get_logs(from_block=0, argument_filters={"taskId": task_id})
    if not started:
        return problems + [f"task {task_id} was never started"], []
    clients = list(started[0]["args"]["clients"])
    n = len(clients)
    verifier = chain.contract(params["verifier"], load_artifact("RoundVerifier").abi)
    vacant = verifier.functions.absentCommitment().call()
    posted = {(e["args"]["epoch"], clients.index(e["args"]["client"])): bytes(e["args"]["commitment"])
              for e in tasks.events.CommitmentPosted().get_logs(from_block=0, argument_filters={"taskId": task_id})}
    slashed = tasks.events.ClientSlashed().get_logs(from_block=0, argument_filters={"taskId": task_id})
    events = sorted(tasks.events.RoundSubmitted().get_logs(from_block=0, argument_filters={"taskId": task_id}),
                    key=lambda e: e["args"]["epoch"])
    epochs = [e["args"]["epoch"] for e in events]
    if epochs != list(range(1, len(events) + 1)):
        problems.append(f"epochs on chain are {epochs}, expected 1..{len(events)} each exactly once")
    root, model, rounds = b"\0" * 32, params["initialModel"], []
    for event in events:
        a, epoch = event["args"], event["args"]["epoch"]
        commitments, signatures = bytes(a["commitments"]), bytes(a["signatures"])
        if len(commitments) != COMMITMENT * (n + 1) or len(signatures) != SIGNATURE * n:
            problems.append(f"epoch {epoch}: batch sizes do not match n={n}")
            continue
        parts = [commitments[COMMITMENT * i : COMMITMENT * (i + 1)] for i in range(n + 1)]
        absent = [i for i in range(n) if a["absentMask"] >> i & 1]
        for i in range(n):
            signature = signatures[SIGNATURE * i : SIGNATURE * (i + 1)]
            if (epoch, i) in posted:
                if parts[i] != posted[epoch, i]:
                    problems.append(f"epoch {epoch}: client {i} posted its commitment on chain, the batch holds another")
            elif i in absent:
                if signature != bytes(SIGNATURE) or keccak(parts[i]) != vacant:
                    problems.append(f"epoch {epoch}: client {i} is marked absent but its slot is not the absent one")
            elif (signer := protocol.recover_signer(task_id, epoch, parts[i], signature)) != clients[i]:
                problems.append(f"epoch {epoch}: client {i}'s commitment is signed by {signer}, not {clients[i]}")
        transaction = chain.w3.eth.get_transaction(event["transactionHash"])
        _, call = tasks.decode_function_input(transaction["input"])
        submitted = call["round"]
        if submitted["previousModel"] != model:
            problems.append(f"epoch {epoch}: starts from model {_hex(submitted['previousModel'])}, "
                            f"the previous epoch ended at {_hex(model)}")
        if bytes(submitted["commitments"]) != commitments:
            problems.append(f"epoch {epoch}: the event's commitments differ from the transaction's")
        check = verifier.functions.verifyRound(submitted["proof"], submitted["instances"], submitted["vka"], commitments)
        try:
            proven = tuple(check.call())  # (selected, absent)
        except Exception as error:  # a revert of the verifier: the proof no longer checks
            problems.append(f"epoch {epoch}: the proof does not verify ({error})")
            proven = None
        if proven is not None and proven != (a["selectedMask"], a["absentMask"]):
            problems.append(f"epoch {epoch}: the proof selects {proven[0]:b} with {proven[1]:b} absent, the event says "
                            f"{a['selectedMask']:b} with {a['absentMask']:b} absent")
        model = keccak(parts[n])
        if a["globalModel"] != model:
            problems.append(f"epoch {epoch}: global model {_hex(a['globalModel'])} is not the hash of the aggregate commitment")
        root = keccak(encode(
            ["bytes32", "uint256", "uint256", "bytes32", "bytes32", "uint256", "uint256", "bytes32"],
            [root, task_id, epoch, keccak(commitments), keccak(signatures), a["flaggedMask"], a["absentMask"], model],
        ))
        if a["stateRoot"] != root:
            problems.append(f"epoch {epoch}: state root {_hex(a['stateRoot'])} differs from the rebuilt {_hex(root)}")
        rounds.append({"epoch": epoch, "commitments": [p.hex() for p in parts], "signatures": signatures,
                       "selected_mask": a["selectedMask"], "tx_hash": _hex(event["transactionHash"]),
                       "absent": absent, "flagged": [i for i in range(n) if a["flaggedMask"] >> i & 1],
                       "slashed": sorted(clients.index(e["args"]["client"]) for e in slashed
                                         if e["args"]["epoch"] == epoch)})
    _, _, epochs_run, _, global_model, state_root = tasks.functions.task(task_id).call()
    if (epochs_run, global_model, state_root) != (len(events), model, root):
        problems.append("the task's current state (epochs, model, root) is not the end of its rebuilt history")
    return problems, rounds


def audit_run(run_dir: Path, protocol: Protocol, prepared, rounds: list[dict]) -> list[str]:
    """Problems found comparing an aggregator's run folder with the rounds rebuilt from the chain."""
    from stakelearn.pipeline.demo import RUN_FILE, STORE_FILE, config_from_json, model_hash
    from stakelearn.pipeline.sequencer import SequencerStore
    from stakelearn.prover.commitments import commit

    run = json.loads((run_dir / RUN_FILE).read_text())
    config = config_from_json(run["config"])
    circuit = prepared.circuit
    problems = []
    initial = np.load(run_dir / "models" / run["initial_model"])
    params = protocol.tasks.functions.taskParams(run["task_id"]).call()
    if model_hash(initial) != params[8]:
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
            if any(bytes.fromhex(u.signature) != chain_round["signatures"][65 * u.client : 65 * (u.client + 1)]
                   for u in updates):
                problems.append(f"epoch {epoch}: the store's signatures differ from the chain's")
            quantized = np.zeros((circuit.n, circuit.d), dtype=np.int64)
            absent = np.isin(np.arange(circuit.n), chain_round["absent"])
            for u in updates:
                quantized[u.client] = quantized_model(store.resolve(u.path), config.fixed_point)
            for i, row in enumerate(tagged_inputs(quantized, absent)):
                if commit(row, prepared.vk, prepared.settings, prepared.srs.path).hex() != chain_round["commitments"][i]:
                    problems.append(f"epoch {epoch}: client {i}'s stored update does not match its on-chain commitment")
            selected = np.array([(chain_round["selected_mask"] >> i) & 1 for i in range(circuit.n)], dtype=bool)
            total = quantized[selected].sum(axis=0)
            if commit(total, prepared.vk, prepared.settings, prepared.srs.path).hex() != chain_round["commitments"][-1]:
                problems.append(f"epoch {epoch}: the stored updates' selected sum does not match the on-chain model commitment")
            proven = krum_round(quantized, circuit.params, absent, circuit.absent_distance).selected
            if proven != [int(i) for i in np.flatnonzero(selected)]:
                problems.append(f"epoch {epoch}: Krum over the stored updates does not give the proven selection")
            if record["model_after"] is not None:
                after = np.load(store.resolve(record["model_after"]))
                if not np.array_equal(after, next_global(total, circuit.m, config.fixed_point)):
                    problems.append(f"epoch {epoch}: the stored global model is not the mean of the proven selection")
    finally:
        store.close()
    return problems


def run_audit(rpc_url: str, task_id: int, contract: str | None = None, run_dir: Path | None = None) -> list[str]:
    """Audit and print the findings; return the problems (empty when all checks pass)."""
    from stakelearn.pipeline.demo import PROTOCOL, RUN_FILE, config_from_json, task_circuits
    from stakelearn.pipeline.protocol import attach_protocol
    from stakelearn.prover.circuit import prepare

    chain = Chain.rpc(rpc_url)
    run = None
    if run_dir is not None:
        if not (run_dir / RUN_FILE).is_file():
            raise InputError(f"{run_dir} is not a run folder ({RUN_FILE} is missing)")
        run = json.loads((run_dir / RUN_FILE).read_text())
    addresses = dict(run["addresses"]) if run else {}
    if contract is not None:
        addresses = {"protocol": Web3.to_checksum_address(contract)}
    if "protocol" not in addresses:
        raise InputError("name the protocol contract with --contract ADDRESS (or give --run with a run.json)")
    protocol = attach_chain_only(chain, addresses["protocol"]) if run is None else attach_protocol(
        chain, addresses, PROTOCOL)
    circuits = None
    if run is not None:
        circuits = tuple(prepare(c) for c in task_circuits(config_from_json(run["config"]), run["inner_cols"]))
    problems, rounds = audit_chain(protocol, task_id, circuits)
    print(f"task {task_id} on {chain.name}: {len(rounds)} epochs rebuilt from chain events")
    for chain_round in rounds:
        for what in ("absent", "slashed"):
            if chain_round[what]:
                print(f"epoch {chain_round['epoch']}: clients {chain_round[what]} {what}")
    if run is not None:
        problems += audit_run(run_dir, protocol, circuits[0], rounds)
    for problem in problems:
        print(f"INCONSISTENT: {problem}")
    print("audit passed: signatures, proofs, model commitments and state roots all check" if not problems
          else f"audit found {len(problems)} inconsistencies")
    return problems


def attach_chain_only(chain: Chain, address: str) -> Protocol:
    """Just enough of a deployment to read one protocol contract's history."""
    artifact = load_artifact("StakeLearnProtocol")
    if not chain.w3.eth.get_code(address):
        raise InputError(f"no contract at {address} on {chain.name}")
    return Protocol(chain, None, chain.contract(address, artifact.abi), None, None)
