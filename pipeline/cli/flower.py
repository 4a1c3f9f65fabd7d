"""`stakelearn flower`: run a posted task's rounds as a Flower app on this machine (SuperLink and
SuperNodes on 127.0.0.1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.flower.local import round_table, run_federation
from stakelearn.pipeline.node.run_folder import config_from_json, load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, required=True, help="the task's folder (demo --setup-only --out DIR)")
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
    config = config_from_json(load_run(args.run_dir)["config"])
    if not (args.app / "pyproject.toml").is_file():
        raise InputError(f"{args.app} is not a Flower app (no pyproject.toml); give the app's folder with --app")
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

        open_task(args.run_dir, args.rpc_url).open_epoch()
    folder = args.run_dir / "flower" / f"{args.engine}-{args.strategy}"
    rounds = args.run_dir / "flower" / f"{args.strategy}.json"
    before = rounds.stat().st_mtime_ns if rounds.exists() else None  # the ServerApp writes it when it finishes
    code = run_federation(
        args.app,
        run_config,
        config.clients,
        folder,
        simulation=args.engine == "simulation",
        client_node=(args.run_dir.resolve(), args.rpc_url),
        signers=args.strategy == "proven",
    )
    if not rounds.exists() or rounds.stat().st_mtime_ns == before:  # flwr run exits 0 even if the ServerApp raised
        raise StakeLearnError(f"the Flower run did not finish (no new {rounds}): its error is above, logs in {folder}")
    if code == 0:
        _print_summary(json.loads(rounds.read_text()))
    return code


def _print_summary(summary: dict) -> None:
    print(round_table(summary), end="")
    if "accuracy_proof" in summary:
        proof = summary["accuracy_proof"]
        target = "reached" if proof["target_reached"] else "missed"
        print(f"accuracy proven on chain: {proof['correct']} of {proof['samples']} correct; target {target}")
