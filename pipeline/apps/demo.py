"""The main job: one federated task on the digits data, end to end, on an EVM.

A requester posts the task (committing to its private evaluation set), clients stake and
enroll, and every epoch each client trains, the attackers among them attack, every client signs
a commitment to its model, and the aggregator checks, proves (ezkl) and submits the Multi-Krum
round; the contracts verify it, flag and slash. After the last epoch the requester reveals its
evaluation set on chain, the aggregator proves the final model's accuracy on it, and the
contract pays the clients on that proof. The run folder (``node.run_folder``) holds everything.

Killed mid-run, ``--resume`` continues the same task on the same node (``--rpc-url``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from eth_account import Account

from stakelearn.circuits.accuracy import FEATURES
from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.digits import accuracy, initial_parameters, one_torch_thread
from stakelearn.pipeline.apps.report import write_report
from stakelearn.pipeline.chain.gateway import Chain, TransactionRejected
from stakelearn.pipeline.contracts.protocol import (
    Protocol,
    attach_protocol,
    check_task_verifiers,
    deploy_protocol,
    deployment_addresses,
    evaluation_commitment,
)
from stakelearn.pipeline.contracts.types import ETHER, ProtocolConfig, TaskParams, TaskStatus
from stakelearn.pipeline.federation.task import TaskConfig, client_models, evaluation_set, make_federation
from stakelearn.pipeline.node.aggregator import Aggregator, stored_models
from stakelearn.pipeline.node.client import Client, enroll, stake
from stakelearn.pipeline.node.requester import (
    model_hash,
    model_spec_hash,
    post_task,
    reveal_evaluation_set,
    revealed_evaluation_set,
)
from stakelearn.pipeline.node.run_folder import (
    EVALUATION_FILE,
    RUN_FILE,
    STORE_FILE,
    check_new_run_folder,
    config_from_json,
    config_to_json,
    load_run,
    model_path,
    npz_bytes,
    round_folder,
    save_array,
    task_circuits,
    updates_folder,
)
from stakelearn.pipeline.node.store import SequencerStore
from stakelearn.prover.accuracy import COMMITMENTS as ACCURACY_COMMITMENTS
from stakelearn.prover.accuracy import (
    AccuracyOutcome,
    accuracy_call_arguments,
    evaluation_values,
    prove_accuracy,
    verify_accuracy,
)
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import round_for

FEE_PER_EPOCH = ETHER // 10
PROTOCOL = ProtocolConfig(stake_wei=ETHER, unbonding_seconds=3600, base_fee_wei=ETHER // 100)
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
            say(f"could not sweep {account.address}'s balance back: {error}")
    return swept


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


# --- set-up: accounts, deployment, task, stakes --------------------------------------------------
def start_run(chain: Chain, protocol: Protocol, config: TaskConfig, circuits: tuple, federation, out: Path) -> dict:
    """Create the actors' keys, post the task (with the requester's commitment to its evaluation
    set), stake, check the task's verifiers and enroll; record it all in ``run.json``."""
    circuit = circuits[0].prepared.circuit  # the round circuit, or the chunk circuit of a round in chunks
    keys = {
        "requester": Account.create(),
        "aggregator": Account.create(),
        "clients": [Account.create() for _ in range(config.clients)],
    }
    chain.fund(keys["requester"].address, config.epochs * FEE_PER_EPOCH + 2 * ETHER)
    chain.fund(keys["aggregator"].address, 10 * ETHER)
    for client in keys["clients"]:
        chain.fund(client.address, 2 * ETHER)
    initial = initial_parameters(config.hidden, config.seed)
    initial_path = save_array(model_path(out, 0), initial)
    pixels, labels = evaluation_set(federation)
    salt = os.urandom(32)  # the set may be guessable (public data): the salt hides it until revealed
    write_bytes_atomic(
        out / EVALUATION_FILE, npz_bytes(pixels=pixels, labels=labels, salt=np.frombuffer(salt, np.uint8))
    )
    k = config.krum
    params = TaskParams(
        model_spec_hash=model_spec_hash(config, circuit),
        n=k.n,
        f=k.f,
        m=k.m,
        aggregation=k.rule_id,
        desired_accuracy_bps=round(config.target_accuracy * 10_000),
        max_epochs=config.epochs,
        fee_per_epoch=FEE_PER_EPOCH,
        verifier=protocol.round_verifier.contract.address,
        initial_model=model_hash(initial),
        evaluation_set=evaluation_commitment(salt, evaluation_values(pixels, labels)),
        evaluation_size=len(labels),
        accuracy_verifier=protocol.accuracy_verifier.address,
    )
    task_id = post_task(protocol, keys["requester"], params)
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
        "initial_model": initial_path.name,
        "keys_warning": "demo keys for a local chain: never fund them elsewhere",
        "funder": chain.payer_address,  # where a run on an RPC chain sweeps what is left in the keys
        "keys": {
            "requester": keys["requester"].key.hex(),
            "aggregator": keys["aggregator"].key.hex(),
            "clients": [c.key.hex() for c in keys["clients"]],
        },
    }
    write_json_atomic(out / RUN_FILE, run)
    return run


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
    if resume:
        run = load_run(out)
        config, inner_cols = config_from_json(run["config"]), run["inner_cols"]
    else:
        check_new_run_folder(out)
    if chain is None:
        chain = Chain.rpc(rpc_url) if rpc_url else Chain.embedded()
    if resume and chain.chain_id != run["chain_id"]:
        raise InputError(f"the run used chain id {run['chain_id']}, the node at {rpc_url} is chain id {chain.chain_id}")
    if not resume:
        check_demo_keys_allowed(chain, allow_demo_keys_on)  # before any work: nothing compiled, deployed or funded
        chain.require_payer()  # a new run deploys and funds: refused before any work without a payer
    circuit, accuracy_circuit = task_circuits(config, inner_cols)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)

    with timer.phase("circuit setup (once per shape)"):
        round_, prepared_accuracy = round_for(circuit, config.dimension), prepare(accuracy_circuit)
    federation = make_federation(config)
    store = SequencerStore(out / STORE_FILE)
    try:
        if resume:
            say(f"resuming task {run['task_id']} in {out}")
            protocol = attach_protocol(chain, run["addresses"], PROTOCOL)
        else:
            with timer.phase("deployment and enrollment"):
                say(f"deploying the protocol on {chain.name} and posting the task")
                protocol_config = PROTOCOL
                if commit_window is not None:
                    periods = replace(PROTOCOL.periods, commit_seconds=commit_window)
                    protocol_config = replace(PROTOCOL, periods=periods)
                protocol = deploy_protocol(chain, round_, prepared_accuracy, protocol_config, config.evaluation_samples)
                run = start_run(chain, protocol, config, (round_, prepared_accuracy), federation, out)
            if setup_only:
                say(f"task {run['task_id']} posted and its {config.clients} clients enrolled: {out / RUN_FILE}")
                return run
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
            run_epoch(epoch, config, federation, aggregator, clients, out, timer)
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
            timer,
        )
        with timer.phase("chain"):
            balances = complete_task(protocol, run, clients)
            funder = run.get("funder") or chain.payer_address
            if chain.chain_id != EMBEDDED_CHAIN_ID and funder:  # a node's keys outlive the run: empty them
                swept = sweep_demo_keys(chain, run, funder)
                say(f"swept {swept} wei left in the demo's keys back to {funder} (bonded stakes stay in the registry)")
    finally:
        store.close()
    timings = {**timer.seconds, "total": time.perf_counter() - started}
    initial_accuracy = accuracy(np.load(out / "models" / run["initial_model"]), federation.test, config.hidden)
    summary = build_summary(
        config, run, round_.prepared, initial_accuracy, results, proven, balances, timings, protocol
    )
    write_report(out / "report", summary)
    return summary


def run_epoch(
    epoch: int, config: TaskConfig, federation, aggregator: Aggregator, clients: list[Client], out: Path, timer: Timer
):
    """Carry ``epoch`` from whatever stage the aggregator's store has it at to finalized."""
    store = aggregator.store
    stage = store.stage(epoch)
    if stage != "finalized":
        say(f"epoch {epoch}/{config.epochs}" + (f" (resuming at stage '{stage}')" if stage else ""))
    if stage is None:
        model_before = model_path(out, epoch - 1)
        global_parameters = np.load(model_before)
        with timer.phase("training"), one_torch_thread():
            say(f"  {config.clients} clients train locally ({config.attackers} attack: {config.attack})")
            trained = client_models(federation, global_parameters, epoch)
        with timer.phase("clients: export, commit, sign"):
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
        with timer.phase("aggregator: check and store"):
            say("  the aggregator checks every update against its signed commitment")
            aggregator.collect(epoch, model_before, signed)
    if store.stage(epoch) == "collected":
        with timer.phase("proving"):
            aggregator.prove(epoch, round_folder(out, epoch))
    if store.stage(epoch) == "proven":
        with timer.phase("chain"):
            say("  submitting the round on chain")
            aggregator.submit(epoch)
    if store.stage(epoch) == "submitted":
        aggregator.finalize(
            epoch, model_path(out, epoch), lambda parameters: accuracy(parameters, federation.test, config.hidden)
        )
        result = aggregator.result(epoch)
        left_out = [i for i in range(config.clients) if i not in result.selected]
        say(
            f"  test accuracy {result.accuracy:.3f}; selected {result.selected}; left out {left_out}; "
            f"flagged {result.flagged}; slashed {result.slashed}; gas {result.gas_used:,}"
        )
    return aggregator.result(epoch)


def evaluate(
    protocol: Protocol, run: dict, aggregator, final_model, prepared_accuracy, out: Path, timer: Timer | None = None
) -> dict:
    """Training is over: the requester reveals its evaluation set on chain; the aggregator (its
    key) reads it from there, proves the accuracy of the final model (``final_model()``: the last
    round's proven aggregate) on it and submits the proof, on which the contract pays out. Steps
    the chain shows done are skipped (resume)."""
    timer = timer or Timer()
    task_id = run["task_id"]
    folder = out / "accuracy"
    if protocol.task(task_id).status == TaskStatus.EVALUATING:
        if not revealed_evaluation_set(protocol, task_id):
            with timer.phase("chain"):
                say("the requester reveals its evaluation set on chain")
                reveal_evaluation_set(
                    protocol, Account.from_key(run["keys"]["requester"]), task_id, out / EVALUATION_FILE
                )
        salt, values = revealed_evaluation_set(protocol, task_id)
        samples = len(values) // (FEATURES + 1)  # the whole set, proven in batches of the circuit's samples
        pixels, labels = (
            np.array(values[: samples * FEATURES]).reshape(samples, FEATURES),
            np.array(values[samples * FEATURES :]),
        )
        with timer.phase("proving"):
            if folder.exists():  # proven before a crash
                verify_accuracy(folder)
            else:
                prove_accuracy(final_model(), pixels, labels, prepared_accuracy.circuit, folder)
        with timer.phase("chain"):
            say("  the aggregator submits the accuracy proof on chain")
            proof, instances, words = accuracy_call_arguments(folder, prepared_accuracy.vka)
            model_commitment = bytes.fromhex(json.loads((folder / ACCURACY_COMMITMENTS).read_text())["model"])
            protocol.execute(aggregator, "submitAccuracy", task_id, salt, proof, instances, words, model_commitment)
    (event,) = protocol.logs("AccuracyProven", taskId=task_id)
    (reveal,) = protocol.logs("EvaluationSetRevealed", taskId=task_id)
    a = event["args"]
    say(
        f"accuracy proven on chain: {a['correct']} of {a['samples']} correct; "
        f"target {'reached' if a['targetReached'] else 'missed'}"
    )
    return {
        "correct": a["correct"],
        "samples": a["samples"],
        "target_reached": a["targetReached"],
        "gas_used": protocol.chain.receipt(event["transactionHash"])["gasUsed"],
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
    roles = [config.attack if i in attackers else "honest" for i in range(config.clients)]
    flagged_ever = sorted({c for r in results for c in r.flagged})
    circuit, chain = prepared.circuit, protocol.chain
    return {
        "config": config_to_json(config),
        "chain": {"name": chain.name, "chain_id": chain.chain_id, **run["addresses"]},
        "task_id": run["task_id"],
        "circuit": {
            "n": circuit.n,
            "f": circuit.f,
            "m": circuit.m,
            "aggregation": config.aggregation,
            "d": config.dimension,
            "chunk": config.chunk,
            "logrows": prepared.logrows,
            "digest": circuit.digest,
            "srs": prepared.srs.label,
        },
        "roles": roles,
        "initial_accuracy": initial_accuracy,
        "epochs": [
            {
                "epoch": r.epoch,
                "accuracy": r.accuracy,
                "scores": [str(s) for s in r.scores],
                "selected": r.selected,
                "left_out": [i for i in range(config.clients) if i not in r.selected],
                "flagged": r.flagged,
                "slashed": r.slashed,
                "gas_used": r.gas_used,
                "tx_hash": r.tx_hash,
                "prove_seconds": r.prove_seconds,
            }
            for r in results
        ],
        "accuracy_proof": proven,
        "stakes_wei": stakes_over_time(
            protocol, run["task_id"], [b["address"] for b in balances["clients"]], config.epochs
        ),
        "balances": balances,
        "outcome": {
            "attackers": sorted(attackers),
            "attackers_flagged": [c for c in flagged_ever if c in attackers],
            "honest_flagged": [c for c in flagged_ever if c not in attackers],
            # a slash takes a proven equivocation (two signed commitments for one epoch), never a flag
            "slashed": sorted({c for r in results for c in r.slashed}),
            "honest_rewarded": all(
                b["reward_wei"] > 0 for i, b in enumerate(balances["clients"]) if i not in attackers
            ),
        },
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


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
    """Prove the accuracy of a run's final model on an evaluation set (.npz with ``pixels`` and
    ``labels``; default: the requester's set in the run folder), with the task's circuit."""
    run = load_run(run_dir)
    path = evaluation or run_dir / EVALUATION_FILE
    try:
        with np.load(path) as data:
            pixels, labels = data["pixels"], data["labels"]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not an evaluation set (.npz with 'pixels' and 'labels'): {error}") from None
    config = replace(config_from_json(run["config"]), evaluation_samples=len(labels))
    _, accuracy_circuit = task_circuits(config, run["inner_cols"])
    return prove_accuracy(final_aggregate(run_dir), pixels, labels, accuracy_circuit, out)
