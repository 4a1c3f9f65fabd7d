"""`stakelearn flower`: run a posted task's rounds as a Flower app on this machine (SuperLink and
SuperNodes on 127.0.0.1): a local trial of the federation every party would run on its own.

Two ways in: ``--run-dir``, a run of the demo (`demo --setup-only`), which plays every actor with
its run's keys and settles at the end; or ``--task-dir``, any posted task (`task create`), with
the clients' keys (one signer each) and the aggregator's key (the ServerApp's environment alone)
from environment variables, settled afterwards by `task reveal` and `task settle`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.flower.local import ClientNodes, round_table, run_federation
from stakelearn.pipeline.node.run_folder import config_from_json, load_run, task_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", type=Path, help="the demo's run folder (demo --setup-only --out DIR)")
    where.add_argument("--task-dir", type=Path, help="a posted task's folder (`task create`)")
    parser.add_argument(
        "--client-keys-env",
        default="STAKELEARN_CLIENT_KEYS",
        metavar="VAR",
        help="with --task-dir: environment variable holding the clients' keys, space-separated (one signer each; "
        "default STAKELEARN_CLIENT_KEYS)",
    )
    parser.add_argument(
        "--aggregator-key-env",
        default="STAKELEARN_AGGREGATOR_KEY",
        metavar="VAR",
        help="with --task-dir: environment variable holding the aggregator's key, given to the ServerApp alone "
        "(default STAKELEARN_AGGREGATOR_KEY)",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="with --task-dir: the ServerApp's work folder (default TASK_DIR.work)"
    )
    parser.add_argument("--rpc-url", required=True, help="a node of the task's chain")
    parser.add_argument(
        "--engine",
        choices=["simulation", "deployment"],
        default="simulation",
        help="Flower's simulation engine, or the deployment engine with one SuperNode process per client",
    )
    parser.add_argument(
        "--strategy",
        choices=["proven", "multikrum"],
        default="proven",
        help="proven: ProvenMultiKrum (default); multikrum: Flower's own MultiKrum, nothing proven, to compare",
    )
    parser.add_argument("--rounds", type=int, default=None, help="server rounds (default: the task's epochs)")
    parser.add_argument(
        "--round-timeout", type=float, default=120.0, help="seconds a round waits for replies; later ones are absent"
    )
    parser.add_argument(
        "--ray-address", default=None, help="prove a chunked task's chunks on this Ray cluster (host:port or auto)"
    )
    parser.add_argument("--app", type=Path, default=Path("examples/flower-digits"), help="the Flower app's folder")


def run(args: argparse.Namespace) -> int:
    if not (args.app / "pyproject.toml").is_file():
        raise InputError(f"{args.app} is not a Flower app (no pyproject.toml); give the app's folder with --app")
    if args.task_dir is not None:
        return _run_task(args)
    run = load_run(args.run_dir)
    config = config_from_json(run["config"])
    run_config = {
        "run-dir": str(args.run_dir.resolve()),
        "rpc-url": args.rpc_url,
        "strategy": args.strategy,
        "num-server-rounds": args.rounds or config.epochs,
        "round-timeout": args.round_timeout,
        "ray-address": args.ray_address or "",
    }
    if args.strategy == "proven":  # refused here in one line, not deep in the ServerApp's log
        from stakelearn.pipeline.flower import open_task  # flwr, an optional extra: only when it runs

        open_task(task_dir(args.run_dir), args.rpc_url).open_epoch()
    folder = args.run_dir / "flower" / f"{args.engine}-{args.strategy}"
    rounds = args.run_dir / "flower" / f"{args.strategy}.json"
    before = rounds.stat().st_mtime_ns if rounds.exists() else None  # the ServerApp writes it when it finishes
    code = run_federation(
        args.app,
        run_config,
        config.clients,
        folder,
        simulation=args.engine == "simulation",
        client_node=ClientNodes(
            task_dir(args.run_dir).resolve(),
            args.rpc_url,
            run["keys"]["clients"] if args.strategy == "proven" else None,
            run["addresses"]["protocol"],
            args.run_dir / "flower",
        ),
    )
    if not rounds.exists() or rounds.stat().st_mtime_ns == before:  # flwr run exits 0 even if the ServerApp raised
        raise StakeLearnError(f"the Flower run did not finish (no new {rounds}): its error is above, logs in {folder}")
    summary = json.loads(rounds.read_text())
    if code == 0 and args.strategy == "proven":
        proof = _settle(args, run)
        if proof is not None:
            summary["accuracy_proof"] = proof
            write_json_atomic(rounds, summary)
    if code == 0:
        _print_summary(summary)
    return code


def _run_task(args: argparse.Namespace) -> int:
    """A posted task's rounds with the parties' own keys: each client's in its signer, the
    aggregator's in the ServerApp's environment only."""
    import os

    from stakelearn.pipeline.chain.accounts import load_account
    from stakelearn.pipeline.flower import open_task

    task = open_task(args.task_dir, args.rpc_url)  # the folder and the verifiers' code, against the chain
    epoch = task.open_epoch()
    clients = task.clients()
    keys = os.environ.get(args.client_keys_env, "").split()
    addresses = [load_account_from(key, args.client_keys_env).address for key in keys]
    if addresses != clients:
        raise InputError(
            f"{args.client_keys_env} must hold the {len(clients)} enrolled clients' keys in slot order "
            f"({', '.join(clients)})"
        )
    aggregator = load_account(args.aggregator_key_env)
    work = (args.work or args.task_dir.with_name(args.task_dir.name + ".work")).resolve()
    summary_file = work / "summary.json"
    before = summary_file.stat().st_mtime_ns if summary_file.exists() else None
    run_config = {
        "task-dir": str(args.task_dir.resolve()),
        "rpc-url": args.rpc_url,
        "work-dir": str(work),
        "num-server-rounds": args.rounds or task.protocol.task_params(task.task_id).max_epochs - epoch + 1,
        "round-timeout": args.round_timeout,
    }
    code = run_federation(
        args.app,
        run_config,
        len(clients),
        work / f"flower-{args.engine}",
        simulation=args.engine == "simulation",
        client_node=ClientNodes(args.task_dir.resolve(), args.rpc_url, keys, task.protocol.tasks.address, work),
        server_env={"STAKELEARN_AGGREGATOR_KEY": aggregator.key.hex()},
    )
    if not summary_file.exists() or summary_file.stat().st_mtime_ns == before:
        raise StakeLearnError(f"the Flower run did not finish (no new {summary_file}): its error is above")
    if code == 0:
        print(round_table(json.loads(summary_file.read_text())), end="")
        print(
            f"rounds' aggregates in {work} (aggregate-epoch-NNN.npy): `stakelearn task settle --aggregate` takes the last"
        )
    return code


def load_account_from(key: str, variable: str):
    from eth_account import Account

    try:
        return Account.from_key(key)
    except ValueError:
        raise InputError(f"{variable} holds something that is not a private key") from None


def _settle(args: argparse.Namespace, run: dict) -> dict | None:
    """After the task's last epoch, the demo's requester reveals its evaluation set and its
    aggregator proves the final aggregate's accuracy on it (``task reveal``, ``task settle``);
    what the chain recorded, or None while the task still trains."""
    from eth_account import Account

    from stakelearn.pipeline.contracts.types import TaskStatus
    from stakelearn.pipeline.flower import open_task
    from stakelearn.pipeline.flower.strategy import saved_aggregate
    from stakelearn.pipeline.node.run_folder import run_round
    from stakelearn.pipeline.node.task_lifecycle import evaluate

    task = open_task(task_dir(args.run_dir), args.rpc_url, check_verifiers=False)
    state = task.protocol.task(task.task_id)
    if state.status != TaskStatus.EVALUATING:
        return None
    _, accuracy = run_round(run)
    aggregate = saved_aggregate(args.run_dir / "flower" / "rounds", state.epochs_run)
    aggregator = Account.from_key(run["keys"]["aggregator"])
    return evaluate(task.protocol, run, aggregator, lambda: aggregate, accuracy, args.run_dir)


def _print_summary(summary: dict) -> None:
    print(round_table(summary), end="")
    if "accuracy_proof" in summary:
        proof = summary["accuracy_proof"]
        target = "reached" if proof["target_reached"] else "missed"
        print(f"accuracy proven on chain: {proof['correct']} of {proof['samples']} correct; target {target}")
