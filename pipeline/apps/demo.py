"""The main job: one federated task on the digits data, end to end, on an EVM.

A requester posts the task (committing to its private evaluation set), clients stake and
enroll, and every epoch each client trains, the attackers among them attack, every client signs
a commitment to its model, and the aggregator checks, proves (ezkl) and submits the Multi-Krum
round; the contracts verify it, flag and slash. After the last epoch the requester reveals its
evaluation set on chain, the aggregator proves the final model's accuracy on it, and the
contract pays the clients on that proof. The run folder (``node.run_folder``) holds everything.
The task's steps are the nodes' (``node.task_lifecycle``); the demo plays every actor with
throwaway keys, times the phases and writes the report.

Killed mid-run, ``--resume`` continues the same task on the same node (``--rpc-url``).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from eth_account import Account

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.files import write_json_atomic
from stakelearn.models.digits import accuracy
from stakelearn.pipeline.apps.report import write_report
from stakelearn.pipeline.chain.gateway import Chain, TransactionRejected
from stakelearn.pipeline.contracts.protocol import (
    Protocol,
    attach_protocol,
    check_task_verifiers,
    deploy_protocol,
    deployment_addresses,
)
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.pipeline.federation.task import TaskConfig, evaluation_set, make_federation
from stakelearn.pipeline.node.aggregator import Aggregator
from stakelearn.pipeline.node.client import Client, enroll, stake
from stakelearn.pipeline.node.requester import post_task, prepare_task, record_posted
from stakelearn.pipeline.node.run_folder import (
    FEDERATION_FILE,
    RUN_FILE,
    STORE_FILE,
    check_new_run_folder,
    config_from_json,
    config_to_json,
    load_run,
    model_path,
    task_circuits,
    task_dir,
)
from stakelearn.pipeline.node.store import SequencerStore
from stakelearn.pipeline.node.task_lifecycle import PROTOCOL, complete_task, evaluate, run_epoch, stakes_over_time
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import round_for

log = logging.getLogger(__name__)

FEE_PER_EPOCH = ETHER // 10
# The chains the demo funds its throwaway keys on (they are written to run.json in plain text):
# local development chains only, unless the user names another with --allow-demo-keys-on.
ANVIL_CHAIN_ID = 31337
EMBEDDED_CHAIN_ID = 131277322940537  # eth-tester's py-evm chain (Chain.embedded)
LOCAL_CHAIN_IDS = (ANVIL_CHAIN_ID, EMBEDDED_CHAIN_ID)


def check_demo_keys_allowed(chain: Chain, allow_on: int | None = None) -> None:
    """Refuse, before anything is deployed or funded, to fund the demo's keys on a chain that is
    not a local development chain, unless ``allow_on`` names that chain's id."""
    if chain.chain_id in LOCAL_CHAIN_IDS or chain.chain_id == allow_on:
        return
    raise InputError(
        f"{chain.name} is chain id {chain.chain_id}, not a local development chain (anvil's {ANVIL_CHAIN_ID} or the "
        f"embedded chain's {EMBEDDED_CHAIN_ID}): the demo funds throwaway keys it writes to run.json in plain text; "
        f"pass --allow-demo-keys-on {chain.chain_id} to fund them there anyway"
    )


def sweep_demo_keys(chain: Chain, run: dict, to: str) -> int:
    """Send what is left in the demo actors' accounts (requester, aggregator, clients) to ``to``,
    the account that funded them; return the wei swept. Each transfer pays its own fee at the
    node's gas price, so an account ends empty; an account holding less than that fee, or one
    the node refuses to send from (a chain charging fees beyond gas, as L2s' data fees), is left
    as it is. Stakes still bonded in the registry are not balances and stay there."""
    keys, swept = run["keys"], 0
    for key in [keys["requester"], keys["aggregator"], *keys["clients"]]:
        account = Account.from_key(key)
        try:
            swept += chain.sweep(account, to)
        except TransactionRejected as error:
            log.info(f"could not sweep {account.address}'s balance back: {error}")
    return swept


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


# --- set-up: accounts, deployment, task, stakes --------------------------------------------------
def fund_demo_keys(chain: Chain, config: TaskConfig) -> dict:
    """New throwaway keys for every actor, funded for what each pays."""
    keys = {
        "requester": Account.create(),
        "aggregator": Account.create(),
        "clients": [Account.create() for _ in range(config.clients)],
    }
    chain.fund(keys["requester"].address, config.epochs * FEE_PER_EPOCH + 2 * ETHER)
    chain.fund(keys["aggregator"].address, 10 * ETHER)
    for client in keys["clients"]:
        chain.fund(client.address, 2 * ETHER)
    return keys


def start_run(chain: Chain, protocol: Protocol, config: TaskConfig, circuits: tuple, federation, out: Path) -> dict:
    """Create the actors' keys, post the task (with the requester's commitment to its evaluation
    set), stake, check the task's verifiers and enroll; record it all in ``run.json``."""
    circuit = circuits[0].prepared.circuit  # the round circuit, or the chunk circuit of a round in chunks
    keys = fund_demo_keys(chain, config)
    task_circuits = (circuit, circuits[1])  # the set's commitments are the prepared accuracy circuit's
    _, params = prepare_task(protocol, config, task_circuits, evaluation_set(federation), out, FEE_PER_EPOCH)
    task_id = post_task(protocol, keys["requester"], params)
    record_posted(task_dir(out), task_id, params)
    check_task_verifiers(protocol, task_id, *circuits)  # every client does this before it enrolls
    for client in keys["clients"]:
        stake(protocol, client)
        enroll(protocol, client, task_id)
    run = {
        "config": config_to_json(config),
        "chain_id": chain.chain_id,
        "addresses": deployment_addresses(protocol),
        "task_id": task_id,
        "inner_cols": circuit.num_inner_cols,
        "initial_model": model_path(out, 0).name,
        "keys_warning": "demo keys for a local chain: never fund them elsewhere",
        "funder": chain.payer_address,  # where a run on an RPC chain sweeps what is left in the keys
        "keys": {
            "requester": keys["requester"].key.hex(),
            "aggregator": keys["aggregator"].key.hex(),
            "clients": [c.key.hex() for c in keys["clients"]],
        },
    }
    write_json_atomic(out / FEDERATION_FILE, run["config"])
    write_json_atomic(out / RUN_FILE, run)
    return run


def open_chain(run: dict | None, rpc_url: str | None, chain: Chain | None, allow_demo_keys_on: int | None) -> Chain:
    """The run's chain (default: the node at ``rpc_url``, else a new embedded chain), checked:
    a resumed run's must be the one it ran on; a new run's must let the demo fund its keys
    and have a payer, refused before any work (nothing compiled, deployed or funded)."""
    if chain is None:
        chain = Chain.rpc(rpc_url) if rpc_url else Chain.embedded()
    if run is not None and chain.chain_id != run["chain_id"]:
        raise InputError(f"the run used chain id {run['chain_id']}, the node at {rpc_url} is chain id {chain.chain_id}")
    if run is None:
        check_demo_keys_allowed(chain, allow_demo_keys_on)
        chain.require_payer()
    return chain


def prepare_circuits(circuits: tuple, dimension: int, timer: Timer) -> tuple:
    """The task's round (over its round ``circuits``, set up) and its prepared accuracy circuit."""
    circuit, accuracy_circuit = circuits
    with timer.phase("circuit setup (once per shape)"):
        return round_for(circuit, dimension), prepare(accuracy_circuit)


def deploy_and_post(
    chain: Chain, config: TaskConfig, circuits: tuple, federation, out: Path, commit_window: int | None, timer: Timer
) -> tuple[Protocol, dict]:
    """Deploy the protocol (its commit window ``commit_window`` seconds, when given) and set the task up."""
    round_, prepared_accuracy = circuits
    with timer.phase("deployment and enrollment"):
        log.info(f"deploying the protocol on {chain.name} and posting the task")
        protocol_config = PROTOCOL
        if commit_window is not None:
            protocol_config = replace(PROTOCOL, periods=replace(PROTOCOL.periods, commit_seconds=commit_window))
        protocol = deploy_protocol(chain, round_, prepared_accuracy, protocol_config, config.evaluation_samples)
        run = start_run(chain, protocol, config, circuits, federation, out)
    return protocol, run


def run_task(
    protocol: Protocol, run: dict, config: TaskConfig, circuits: tuple, federation, store, out: Path, timer: Timer
) -> tuple[list, dict, list[Client]]:
    """Every epoch, then the evaluation: the epochs' results, the proven accuracy and the clients."""
    round_, prepared_accuracy = circuits
    keys = run["keys"]
    clients = [Client(i, Account.from_key(key)) for i, key in enumerate(keys["clients"])]
    aggregator = Aggregator(
        Account.from_key(keys["aggregator"]),
        protocol,
        round_,
        store,
        run["task_id"],
        [c.account.address for c in clients],
        config.fixed_point,
    )
    results = [
        run_epoch(epoch, config, federation, aggregator, clients, out, timer.phase)
        for epoch in range(1, config.epochs + 1)
    ]
    last = protocol.task(run["task_id"]).epochs_run
    proven = evaluate(
        protocol,
        run,
        aggregator.account,
        lambda: krum_round(aggregator.quantized_updates(last), aggregator.params).total,
        prepared_accuracy,
        out,
        timer.phase,
    )
    return results, proven, clients


def pay_out(chain: Chain, protocol: Protocol, run: dict, clients: list[Client], timer: Timer) -> dict:
    """Everyone withdraws; a run on a node then empties the demo's keys (they outlive it). The balances."""
    with timer.phase("chain"):
        balances = complete_task(protocol, run, clients)
        funder = run.get("funder") or chain.payer_address
        if chain.chain_id != EMBEDDED_CHAIN_ID and funder:  # a node's keys outlive the run: empty them
            swept = sweep_demo_keys(chain, run, funder)
            log.info(f"swept {swept} wei left in the demo's keys back to {funder} (bonded stakes stay in the registry)")
    return balances


# --- the run ------------------------------------------------------------------------------------
def run_demo(
    config: TaskConfig,
    out: Path,
    rpc_url: str | None = None,
    resume: bool = False,
    inner_cols: int = 8,
    chain: Chain | None = None,
    setup_only: bool = False,
    commit_window: int | None = None,
    allow_demo_keys_on: int | None = None,
) -> dict:
    """Run (or resume) the task on ``chain`` (default: the node at ``rpc_url``, else a new
    embedded chain); return the summary the report holds. With ``setup_only``, stop once the
    task is posted and every client enrolled (``run.json`` written), and return ``run.json``'s
    contents: the rounds then run elsewhere, as in the Flower example. ``commit_window`` (seconds)
    shortens each epoch's commit window, after which a round may leave absent clients out. A new
    run funds its throwaway keys only on a local development chain, or on the chain whose id
    ``allow_demo_keys_on`` names; a finished run on any chain but the embedded one sweeps what
    is left in those keys back to the account that funded them."""
    timer = Timer()
    started = time.perf_counter()
    if resume and rpc_url is None and chain is None:
        raise InputError("--resume needs --rpc-url: the embedded chain does not outlive the process that ran it")
    run = None
    if resume:
        run = load_run(out)
        config, inner_cols = config_from_json(run["config"]), run["inner_cols"]
    else:
        check_new_run_folder(out)
    chain = open_chain(run, rpc_url, chain, allow_demo_keys_on)
    shapes = task_circuits(config, inner_cols)  # a bad shape is refused before a new run's folder exists
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
    circuits = prepare_circuits(shapes, config.dimension, timer)
    federation = make_federation(config)
    store = SequencerStore(out / STORE_FILE)
    try:
        if resume:
            log.info(f"resuming task {run['task_id']} in {out}")
            protocol = attach_protocol(chain, run["addresses"], PROTOCOL)
        else:
            protocol, run = deploy_and_post(chain, config, circuits, federation, out, commit_window, timer)
            if setup_only:
                log.info(f"task {run['task_id']} posted and its {config.clients} clients enrolled: {out / RUN_FILE}")
                return run
        results, proven, clients = run_task(protocol, run, config, circuits, federation, store, out, timer)
        balances = pay_out(chain, protocol, run, clients, timer)
    finally:
        store.close()
    timings = {**timer.seconds, "total": time.perf_counter() - started}
    initial_accuracy = accuracy(np.load(out / "models" / run["initial_model"]), federation.test, config.hidden)
    summary = build_summary(
        config, run, circuits[0].prepared, initial_accuracy, results, proven, balances, timings, protocol
    )
    write_report(out / "report", summary)
    return summary


# --- the summary the report holds ---------------------------------------------------------------
def circuit_summary(config: TaskConfig, prepared) -> dict:
    circuit = prepared.circuit
    return {
        "n": circuit.n,
        "f": circuit.f,
        "m": circuit.m,
        "aggregation": config.aggregation,
        "verification": config.verification,
        "d": config.dimension,
        "chunk": config.chunk,
        "logrows": prepared.logrows,
        "digest": circuit.digest,
        "srs": prepared.srs.label,
    }


def epoch_summary(config: TaskConfig, result) -> dict:
    return {
        "epoch": result.epoch,
        "accuracy": result.accuracy,
        "scores": [str(s) for s in result.scores],
        "selected": result.selected,
        "left_out": [i for i in range(config.clients) if i not in result.selected],
        "flagged": result.flagged,
        "slashed": result.slashed,
        "gas_used": result.gas_used,
        "tx_hash": result.tx_hash,
        "prove_seconds": result.prove_seconds,
    }


def outcome(config: TaskConfig, results, balances: dict) -> dict:
    """Who attacked, who was flagged or slashed, and whether every honest client was paid."""
    attackers = set(config.attacker_ids)
    flagged_ever = sorted({c for r in results for c in r.flagged})
    return {
        "attackers": sorted(attackers),
        "attackers_flagged": [c for c in flagged_ever if c in attackers],
        "honest_flagged": [c for c in flagged_ever if c not in attackers],
        # a slash takes a proven equivocation (two signed commitments for one epoch), never a flag
        "slashed": sorted({c for r in results for c in r.slashed}),
        "honest_rewarded": all(b["reward_wei"] > 0 for i, b in enumerate(balances["clients"]) if i not in attackers),
    }


def build_summary(
    config: TaskConfig,
    run: dict,
    prepared,
    initial_accuracy: float,
    results,
    proven: dict,
    balances: dict,
    timings: dict,
    protocol: Protocol,
) -> dict:
    attackers = set(config.attacker_ids)
    chain, clients = protocol.chain, [b["address"] for b in balances["clients"]]
    return {
        "config": config_to_json(config),
        "chain": {"name": chain.name, "chain_id": chain.chain_id, **run["addresses"]},
        "task_id": run["task_id"],
        "circuit": circuit_summary(config, prepared),
        "roles": [config.attack if i in attackers else "honest" for i in range(config.clients)],
        "initial_accuracy": initial_accuracy,
        "epochs": [epoch_summary(config, r) for r in results],
        "accuracy_proof": proven,
        "stakes_wei": stakes_over_time(protocol, run["task_id"], clients, config.epochs),
        "balances": balances,
        "outcome": outcome(config, results, balances),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
