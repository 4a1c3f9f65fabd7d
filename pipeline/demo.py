"""The main job: one federated task on the digits data, end to end, on an EVM.

A requester posts the task (committing to its private evaluation set), clients stake and
enroll, and every epoch each client trains, the attackers among them attack, every client signs
a commitment to its model, and the aggregator checks, proves (ezkl) and submits the Multi-Krum
round; the contracts verify it, flag and slash. After the last epoch the requester reveals its
evaluation set on chain, the aggregator proves the final model's accuracy on it, and the
contract pays the clients on that proof. The run folder holds everything:

    run.json        configuration, chain id, contract addresses, task id, the demo's keys
    store.sqlite    the aggregator's sequencer store (see pipeline.sequencer)
    models/         the global model of every epoch (epoch-0 is the initial one)
    updates/        every client's ONNX model per epoch
    rounds/         every epoch's proof folder
    requester/      the requester's private evaluation set and salt (revealed on chain at the end)
    accuracy/       the accuracy proof of the final model on that set
    report/         report.md, summary.json and the plots

Killed mid-run, ``--resume`` continues the same task on the same node (``--rpc-url``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from eth_account import Account
from eth_utils import keccak

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.digits import LocalTraining, accuracy, initial_parameters, one_torch_thread
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain import Chain
from stakelearn.circuits.accuracy import FEATURES
from stakelearn.circuits.krum import krum_round
from stakelearn.pipeline.federation import TaskConfig, client_models, evaluation_set, make_federation
from stakelearn.pipeline.protocol import (
    Protocol, ProtocolConfig, attach_protocol, check_task_verifiers, deploy_protocol, deployment_addresses,
    evaluation_commitment,
)
from stakelearn.pipeline.report import write_report
from stakelearn.pipeline.roles import Aggregator, Client, npz_bytes, save_array, stored_models
from stakelearn.pipeline.sequencer import SequencerStore
from stakelearn.prover.accuracy import COMMITMENTS as ACCURACY_COMMITMENTS
from stakelearn.prover.accuracy import (
    AccuracyCircuit, AccuracyOutcome, evaluation_values, paired_circuits, prove_accuracy, verify_accuracy,
)
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.evm import verify_arguments
from stakelearn.prover.steps import PROOF

RUN_FILE = "run.json"
STORE_FILE = "store.sqlite"
ETHER = 10**18
FEE_PER_EPOCH = ETHER // 10
TASK_EVALUATING = 5  # TaskEscrow.Status.Evaluating
EVALUATION_FILE = "requester/evaluation.npz"
PROTOCOL = ProtocolConfig(stake_wei=ETHER, unbonding_seconds=3600, base_fee_wei=ETHER // 100)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Timer:
    """Wall time per phase of the run (training, proving, chain, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def task_circuits(config: TaskConfig, inner_cols: int) -> tuple[RoundCircuit, AccuracyCircuit]:
    """The task's round and accuracy circuits, at one shared logrows (see paired_circuits)."""
    k = config.krum
    round_circuit = RoundCircuit(n=k.n, f=k.f, m=k.m, d=config.dimension, max_int=config.fixed_point.max_int,
                                 num_inner_cols=inner_cols)
    return paired_circuits(round_circuit, config.evaluation_samples)


def config_to_json(config: TaskConfig) -> dict:
    return asdict(config)


def config_from_json(data: dict) -> TaskConfig:
    return TaskConfig(**{**data, "fixed_point": FixedPoint(**data["fixed_point"]),
                         "training": LocalTraining(**data["training"])})


def model_spec_hash(config: TaskConfig, circuit: RoundCircuit) -> bytes:
    """What the requester asks for: the model, its fixed point, the data set and the circuit."""
    spec = {"model": "digits-softmax", "hidden": config.hidden, "fixed_point": asdict(config.fixed_point),
            "data": "sklearn.datasets.load_digits", "circuit": circuit.digest}
    return keccak(text=json.dumps(spec, sort_keys=True))


def model_hash(parameters: np.ndarray) -> bytes:
    """The initial model's on-chain commitment: keccak256 of its float64 parameters."""
    return keccak(np.ascontiguousarray(parameters, dtype="<f8").tobytes())


# --- set-up: accounts, deployment, task, stakes --------------------------------------------------
def start_run(chain: Chain, protocol: Protocol, config: TaskConfig, circuits: tuple, federation, out: Path) -> dict:
    """Create the actors' keys, post the task (with the requester's commitment to its evaluation
    set), stake, check the task's verifiers and enroll; record it all in ``run.json``."""
    circuit = circuits[0].circuit
    n = config.clients
    keys = {"requester": Account.create(), "aggregator": Account.create(),
            "clients": [Account.create() for _ in range(n)]}
    chain.fund(keys["requester"].address, config.epochs * FEE_PER_EPOCH + 2 * ETHER)
    chain.fund(keys["aggregator"].address, 10 * ETHER)
    for client in keys["clients"]:
        chain.fund(client.address, 2 * ETHER)
    initial = initial_parameters(config.hidden, config.seed)
    initial_path = save_array(out / "models" / "epoch-0.npy", initial)
    pixels, labels = evaluation_set(federation)
    salt = os.urandom(32)  # the set may be guessable (public data): the salt hides it until revealed
    write_bytes_atomic(out / EVALUATION_FILE, npz_bytes(pixels=pixels, labels=labels, salt=np.frombuffer(salt, np.uint8)))
    evaluation = evaluation_commitment(salt, evaluation_values(pixels, labels))
    k = config.krum
    params = (model_spec_hash(config, circuit), k.n, k.f, k.m, round(config.target_accuracy * 10_000), config.epochs,
              FEE_PER_EPOCH, protocol.round_verifier.contract.address, model_hash(initial),
              evaluation, len(labels), protocol.accuracy_verifier.address)
    tasks = protocol.tasks
    escrow = PROTOCOL.base_fee_wei + config.epochs * FEE_PER_EPOCH
    send_checked(chain, keys["requester"], tasks.functions.createTask(params), "createTask", value=escrow)
    task_id = tasks.functions.taskCount().call()
    check_task_verifiers(protocol, task_id, *circuits)  # every client does this before it enrolls
    for client in keys["clients"]:
        send_checked(chain, client, protocol.registry.functions.stake(), "stake", value=PROTOCOL.stake_wei)
        send_checked(chain, client, tasks.functions.enroll(task_id), "enroll")
    run = {
        "config": config_to_json(config),
        "chain_id": chain.chain_id,
        "addresses": deployment_addresses(protocol),
        "task_id": task_id,
        "inner_cols": circuit.num_inner_cols,
        "initial_model": initial_path.name,
        "keys_warning": "demo keys for a local chain: never fund them elsewhere",
        "keys": {"requester": keys["requester"].key.hex(), "aggregator": keys["aggregator"].key.hex(),
                 "clients": [c.key.hex() for c in keys["clients"]]},
    }
    write_json_atomic(out / RUN_FILE, run)
    return run


def send_checked(chain: Chain, account, call, what: str, value: int = 0) -> dict:
    receipt = chain.send(account, call, value=value)
    if receipt["status"] != 1:
        raise StakeLearnError(f"{what} from {account.address} reverted")
    return receipt


def load_run(out: Path) -> dict:
    try:
        return json.loads((out / RUN_FILE).read_text())
    except FileNotFoundError:
        raise InputError(f"{out} is not a run folder ({RUN_FILE} is missing): `stakelearn demo --out DIR` makes one") from None


# --- the run ------------------------------------------------------------------------------------
def run_demo(config: TaskConfig, out: Path, rpc_url: str | None = None, resume: bool = False,
             inner_cols: int = 8, chain: Chain | None = None) -> dict:
    """Run (or resume) the task on ``chain`` (default: the node at ``rpc_url``, else a new
    embedded chain); return the summary the report holds."""
    timer = Timer()
    started = time.perf_counter()
    if resume and rpc_url is None and chain is None:
        raise InputError("--resume needs --rpc-url: the embedded chain does not outlive the process that ran it")
    if resume:
        run = load_run(out)
        config, inner_cols = config_from_json(run["config"]), run["inner_cols"]
    circuit, accuracy_circuit = task_circuits(config, inner_cols)
    if chain is None:
        chain = Chain.rpc(rpc_url) if rpc_url else Chain.embedded()
    if resume and chain.chain_id != run["chain_id"]:
        raise InputError(f"the run used chain id {run['chain_id']}, the node at {rpc_url} is chain id {chain.chain_id}")

    with timer.phase("circuit setup (once per shape)"):
        prepared, prepared_accuracy = prepare(circuit), prepare(accuracy_circuit)
    federation = make_federation(config)
    if resume:
        say(f"resuming task {run['task_id']} in {out}")
        store = SequencerStore(out / STORE_FILE)
        protocol = attach_protocol(chain, run["addresses"], PROTOCOL)
    else:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        store = SequencerStore(out / STORE_FILE)
        with timer.phase("deployment and enrollment"):
            say(f"deploying the protocol on {chain.name} and posting the task")
            protocol = deploy_protocol(chain, prepared, prepared_accuracy, PROTOCOL)
            run = start_run(chain, protocol, config, (prepared, prepared_accuracy), federation, out)
    try:
        keys = run["keys"]
        clients = [Client(i, Account.from_key(key)) for i, key in enumerate(keys["clients"])]
        aggregator = Aggregator(Account.from_key(keys["aggregator"]), protocol, prepared, store, run["task_id"],
                                [c.account.address for c in clients], config.fixed_point)
        results = []
        for epoch in range(1, config.epochs + 1):
            results.append(run_epoch(epoch, config, federation, aggregator, clients, out, timer))
        proven = evaluate(protocol, run, aggregator, prepared_accuracy, out, timer)
        with timer.phase("chain"):
            balances = complete_task(protocol, run, clients)
    finally:
        store.close()
    timings = {**timer.seconds, "total": time.perf_counter() - started}
    initial_accuracy = accuracy(np.load(out / "models" / run["initial_model"]), federation.test, config.hidden)
    summary = build_summary(config, run, circuit, prepared, initial_accuracy, results, proven, balances, timings,
                            protocol, chain)
    write_report(out / "report", summary)
    return summary


def run_epoch(epoch: int, config: TaskConfig, federation, aggregator: Aggregator, clients: list[Client],
              out: Path, timer: Timer):
    """Carry ``epoch`` from whatever stage the aggregator's store has it at to finalized."""
    store = aggregator.store
    stage = store.stage(epoch)
    if stage != "finalized":
        say(f"epoch {epoch}/{config.epochs}" + (f" (resuming at stage '{stage}')" if stage else ""))
    if stage is None:
        model_before = out / "models" / f"epoch-{epoch - 1}.npy"
        global_parameters = np.load(model_before)
        with timer.phase("training"), one_torch_thread():
            say(f"  {config.clients} clients train locally ({config.attackers} attack: {config.attack})")
            trained = client_models(federation, global_parameters, epoch)
        with timer.phase("clients: export, commit, sign"):
            folder = out / "updates" / f"epoch-{epoch}"
            signed = [c.submit(aggregator.protocol, aggregator.prepared, aggregator.task_id, epoch, trained[c.index],
                               config.hidden, config.fixed_point, folder) for c in clients]
        with timer.phase("aggregator: check and store"):
            say("  the aggregator checks every update against its signed commitment")
            aggregator.collect(epoch, model_before, signed)
    if store.stage(epoch) == "collected":
        with timer.phase("proving"):
            aggregator.prove(epoch, out / "rounds" / f"epoch-{epoch}")
    if store.stage(epoch) == "proven":
        with timer.phase("chain"):
            say("  submitting the round on chain")
            aggregator.submit(epoch)
    if store.stage(epoch) == "submitted":
        aggregator.finalize(epoch, out / "models" / f"epoch-{epoch}.npy",
                            lambda parameters: accuracy(parameters, federation.test, config.hidden))
        result = aggregator.result(epoch)
        say(f"  test accuracy {result.accuracy:.3f}; flagged {result.flagged}; slashed {result.slashed}; "
            f"gas {result.gas_used:,}")
    return aggregator.result(epoch)


def evaluate(protocol: Protocol, run: dict, aggregator: Aggregator, prepared_accuracy, out: Path, timer: Timer) -> dict:
    """Training is over: the requester reveals its evaluation set on chain; the aggregator reads
    it from there, proves the final model's accuracy on it and submits the proof, on which the
    contract pays out. Steps the chain shows done are skipped (resume)."""
    tasks, task_id, chain = protocol.tasks, run["task_id"], protocol.chain
    folder = out / "accuracy"
    if tasks.functions.task(task_id).call()[1] == TASK_EVALUATING:
        if not revealed_evaluation_set(protocol, task_id):
            with timer.phase("chain"):
                say("the requester reveals its evaluation set on chain")
                with np.load(out / EVALUATION_FILE) as secret:
                    salt, values = secret["salt"].tobytes(), evaluation_values(secret["pixels"], secret["labels"])
                requester = Account.from_key(run["keys"]["requester"])
                send_checked(chain, requester, tasks.functions.revealEvaluationSet(task_id, salt, values), "revealEvaluationSet")
        salt, values = revealed_evaluation_set(protocol, task_id)
        samples = prepared_accuracy.circuit.samples
        pixels, labels = np.array(values[: samples * FEATURES]).reshape(samples, FEATURES), np.array(values[samples * FEATURES :])
        last = tasks.functions.task(task_id).call()[2]
        model = krum_round(aggregator.quantized_updates(last), aggregator.circuit.params).total
        with timer.phase("proving"):
            if folder.exists():  # proven before a crash
                verify_accuracy(folder)
            else:
                prove_accuracy(model, pixels, labels, prepared_accuracy.circuit, folder)
        with timer.phase("chain"):
            say("  the aggregator submits the accuracy proof on chain")
            proof, instances, words = verify_arguments(folder / PROOF, prepared_accuracy.vka)
            model_commitment = bytes.fromhex(json.loads((folder / ACCURACY_COMMITMENTS).read_text())["model"])
            send_checked(chain, aggregator.account,
                         tasks.functions.submitAccuracy(task_id, salt, proof, instances, words, model_commitment),
                         "submitAccuracy")
    (event,) = tasks.events.AccuracyProven().get_logs(from_block=0, argument_filters={"taskId": task_id})
    receipt = chain.w3.eth.get_transaction_receipt(event["transactionHash"])
    (reveal,) = tasks.events.EvaluationSetRevealed().get_logs(from_block=0, argument_filters={"taskId": task_id})
    a = event["args"]
    say(f"accuracy proven on chain: {a['correct']} of {a['samples']} correct; "
        f"target {'reached' if a['targetReached'] else 'missed'}")
    return {"correct": a["correct"], "samples": a["samples"], "target_reached": a["targetReached"],
            "gas_used": receipt["gasUsed"], "folder": str(folder),
            "reveal_gas_used": chain.w3.eth.get_transaction_receipt(reveal["transactionHash"])["gasUsed"]}


def revealed_evaluation_set(protocol: Protocol, task_id: int) -> tuple[bytes, list[int]] | None:
    """The salt and values a requester revealed on chain (read from the reveal's calldata)."""
    logs = protocol.tasks.events.EvaluationSetRevealed().get_logs(from_block=0, argument_filters={"taskId": task_id})
    if not logs:
        return None
    transaction = protocol.chain.w3.eth.get_transaction(logs[0]["transactionHash"])
    _, call = protocol.tasks.decode_function_input(transaction["input"])
    return bytes(call["salt"]), list(call["values"])


def complete_task(protocol: Protocol, run: dict, clients: list[Client]) -> dict:
    """Everyone withdraws the credit the settled task left them; the balances that resulted."""
    tasks, chain = protocol.tasks, protocol.chain
    requester = Account.from_key(run["keys"]["requester"])
    task_id = run["task_id"]
    for account in [requester, *[c.account for c in clients]]:
        if tasks.functions.creditOf(account.address).call() > 0:
            send_checked(chain, account, tasks.functions.withdrawCredit(), "withdrawCredit")
    (completed,) = tasks.events.TaskCompleted().get_logs(from_block=0, argument_filters={"taskId": task_id})
    rewards = {e["args"]["account"]: e["args"]["amount"]
               for e in tasks.events.CreditWithdrawn().get_logs(from_block=completed["blockNumber"])}
    return {
        "rewarded_wei": completed["args"]["rewarded"],
        "refunded_wei": completed["args"]["refunded"],
        "clients": [{"address": c.account.address,
                     "stake_wei": protocol.registry.functions.stakeOf(c.account.address).call(),
                     "reward_wei": rewards.get(c.account.address, 0)} for c in clients],
    }


def stakes_over_time(protocol: Protocol, task_id: int, clients: list[str], epochs: int) -> list[list[int]]:
    """Every client's stake after each epoch (row 0: before the first), from ClientSlashed events."""
    taken = np.zeros((epochs + 1, len(clients)), dtype=object)
    for event in protocol.tasks.events.ClientSlashed().get_logs(from_block=0, argument_filters={"taskId": task_id}):
        taken[event["args"]["epoch"], clients.index(event["args"]["client"])] += event["args"]["taken"]
    return (PROTOCOL.stake_wei - np.cumsum(taken, axis=0)).tolist()


def build_summary(config: TaskConfig, run: dict, circuit: RoundCircuit, prepared, initial_accuracy: float, results,
                  proven: dict, balances: dict, timings: dict, protocol: Protocol, chain: Chain) -> dict:
    attackers = set(config.attacker_ids)
    roles = [config.attack if i in attackers else "honest" for i in range(config.clients)]
    slashed_ever = sorted({c for r in results for c in r.slashed})
    return {
        "config": config_to_json(config),
        "chain": {"name": chain.name, "chain_id": chain.chain_id, **run["addresses"]},
        "task_id": run["task_id"],
        "circuit": {"n": circuit.n, "f": circuit.f, "m": circuit.m, "d": circuit.d, "logrows": prepared.logrows,
                    "digest": circuit.digest, "srs": prepared.srs.label},
        "roles": roles,
        "initial_accuracy": initial_accuracy,
        "epochs": [{"epoch": r.epoch, "accuracy": r.accuracy, "scores": [str(s) for s in r.scores],
                    "selected": r.selected, "flagged": r.flagged, "slashed": r.slashed, "gas_used": r.gas_used,
                    "tx_hash": r.tx_hash, "prove_seconds": r.prove_seconds} for r in results],
        "accuracy_proof": proven,
        "stakes_wei": stakes_over_time(protocol, run["task_id"], [b["address"] for b in balances["clients"]], config.epochs),
        "balances": balances,
        "outcome": {
            "attackers": sorted(attackers),
            "attackers_slashed": [c for c in slashed_ever if c in attackers],
            "honest_slashed": [c for c in slashed_ever if c not in attackers],
            "honest_rewarded": all(b["reward_wei"] > 0 for i, b in enumerate(balances["clients"]) if i not in attackers),
        },
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def final_aggregate(run_dir: Path) -> np.ndarray:
    """The run's last proven aggregate (the global model times m, in fixed-point units),
    recomputed from the aggregator's stored updates."""
    run = load_run(run_dir)
    config = config_from_json(run["config"])
    store = SequencerStore(run_dir / STORE_FILE)
    try:
        done = [e["epoch"] for e in store.epochs() if e["stage"] in ("submitted", "finalized")]
        if not done:
            raise InputError(f"{run_dir} has no submitted epoch yet: there is no model to evaluate")
        return krum_round(stored_models(store, max(done), config.fixed_point), config.krum).total
    finally:
        store.close()


def prove_run_accuracy(run_dir: Path, evaluation: Path | None, out: Path) -> AccuracyOutcome:
    """Prove the accuracy of a run's final model on an evaluation set (.npz with ``pixels`` and
    ``labels``; default: the requester's set in the run folder), with the task's circuit."""
    run = load_run(run_dir)
    config = config_from_json(run["config"])
    path = evaluation or run_dir / EVALUATION_FILE
    try:
        with np.load(path) as data:
            pixels, labels = data["pixels"], data["labels"]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not an evaluation set (.npz with 'pixels' and 'labels'): {error}") from None
    _, accuracy_circuit = task_circuits(replace(config, evaluation_samples=len(labels)), run["inner_cols"])
    return prove_accuracy(final_aggregate(run_dir), pixels, labels, accuracy_circuit, out)
