"""The main job: one federated task on the digits data, end to end, on an EVM.

A requester posts the task, clients stake and enroll, and every epoch each client trains, the
attackers among them attack, every client signs a commitment to its update, and the
aggregator checks, proves (ezkl) and submits the Multi-Krum round; the contracts verify it,
flag and slash, and finally pay the honest clients. The run folder holds everything:

    run.json        configuration, chain id, contract addresses, task id, the demo's keys
    store.sqlite    the aggregator's sequencer store (see pipeline.sequencer)
    models/         the global model of every epoch (epoch-0 is the initial one)
    updates/        every client's ONNX model per epoch
    rounds/         every epoch's proof folder
    report/         report.md, summary.json and the plots

Killed mid-run, ``--resume`` continues the same task on the same node (``--rpc-url``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.files import write_json_atomic
from stakelearn.models.digits import LocalTraining, accuracy, initial_parameters, one_torch_thread
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain import Chain
from stakelearn.pipeline.federation import TaskConfig, client_updates, make_federation
from stakelearn.pipeline.protocol import (
    Protocol, ProtocolConfig, attach_protocol, deploy_protocol, deployment_addresses,
)
from stakelearn.pipeline.report import write_report
from stakelearn.pipeline.roles import Aggregator, Client, save_array
from stakelearn.pipeline.sequencer import SequencerStore
from stakelearn.prover.circuit import RoundCircuit, prepare

RUN_FILE = "run.json"
STORE_FILE = "store.sqlite"
ETHER = 10**18
FEE_PER_EPOCH = ETHER // 10
DESIRED_ACCURACY_BPS = 8_500
TASK_COMPLETED = 3  # TaskEscrow.Status.Completed
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


def round_circuit(config: TaskConfig, inner_cols: int) -> RoundCircuit:
    k = config.krum
    return RoundCircuit(n=k.n, f=k.f, m=k.m, d=config.dimension, max_int=config.fixed_point.max_int,
                        num_inner_cols=inner_cols)


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
def start_run(chain: Chain, protocol: Protocol, config: TaskConfig, circuit: RoundCircuit, out: Path) -> dict:
    """Create the actors' keys, post the task, stake and enroll; record it all in ``run.json``."""
    n = config.clients
    keys = {"requester": Account.create(), "aggregator": Account.create(),
            "clients": [Account.create() for _ in range(n)]}
    chain.fund(keys["requester"].address, config.epochs * FEE_PER_EPOCH + 2 * ETHER)
    chain.fund(keys["aggregator"].address, 10 * ETHER)
    for client in keys["clients"]:
        chain.fund(client.address, 2 * ETHER)
    initial = initial_parameters(config.hidden, config.seed)
    initial_path = save_array(out / "models" / "epoch-0.npy", initial)
    k = config.krum
    params = (model_spec_hash(config, circuit), k.n, k.f, k.m, DESIRED_ACCURACY_BPS, config.epochs,
              FEE_PER_EPOCH, protocol.round_verifier.contract.address, model_hash(initial))
    tasks = protocol.tasks
    escrow = PROTOCOL.base_fee_wei + config.epochs * FEE_PER_EPOCH
    send_checked(chain, keys["requester"], tasks.functions.createTask(params), "createTask", value=escrow)
    task_id = tasks.functions.taskCount().call()
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
        raise InputError(f"{out} holds no run to resume ({RUN_FILE} is missing); start one without --resume") from None


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
    circuit = round_circuit(config, inner_cols)
    if chain is None:
        chain = Chain.rpc(rpc_url) if rpc_url else Chain.embedded()
    if resume and chain.chain_id != run["chain_id"]:
        raise InputError(f"the run used chain id {run['chain_id']}, the node at {rpc_url} is chain id {chain.chain_id}")

    with timer.phase("circuit setup (once per shape)"):
        prepared = prepare(circuit)
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
            protocol = deploy_protocol(chain, prepared, PROTOCOL)
            run = start_run(chain, protocol, config, circuit, out)
    try:
        keys = run["keys"]
        clients = [Client(i, Account.from_key(key)) for i, key in enumerate(keys["clients"])]
        aggregator = Aggregator(Account.from_key(keys["aggregator"]), protocol, prepared, store, run["task_id"],
                                [c.account.address for c in clients], config.fixed_point)
        results = []
        for epoch in range(1, config.epochs + 1):
            results.append(run_epoch(epoch, config, federation, aggregator, clients, out, timer))
        with timer.phase("chain"):
            balances = complete_task(protocol, run, clients)
    finally:
        store.close()
    timings = {**timer.seconds, "total": time.perf_counter() - started}
    initial_accuracy = accuracy(np.load(out / "models" / run["initial_model"]), federation.test, config.hidden)
    summary = build_summary(config, run, circuit, prepared, initial_accuracy, results, balances, timings, protocol, chain)
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
            trained = global_parameters + client_updates(federation, global_parameters, epoch)
        with timer.phase("clients: export, commit, sign"):
            folder = out / "updates" / f"epoch-{epoch}"
            signed = [c.submit(aggregator.protocol, aggregator.prepared, aggregator.task_id, epoch, trained[c.index],
                               global_parameters, config.hidden, config.fixed_point, folder) for c in clients]
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


def complete_task(protocol: Protocol, run: dict, clients: list[Client]) -> dict:
    """The requester completes the task (fees to the unflagged clients, the rest refunded) and
    everyone withdraws their credit. Skipped parts that the chain shows done."""
    tasks, chain = protocol.tasks, protocol.chain
    requester = Account.from_key(run["keys"]["requester"])
    task_id = run["task_id"]
    if tasks.functions.task(task_id).call()[1] != TASK_COMPLETED:
        say("the requester completes the task; clients withdraw their rewards")
        send_checked(chain, requester, tasks.functions.complete(task_id), "complete")
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
                  balances: dict, timings: dict, protocol: Protocol, chain: Chain) -> dict:
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
