"""`stakelearn audit`: rebuild a task's MPS history from chain events and re-check it."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.apps.audit import run_audit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    parser.add_argument("--task", type=int, required=True, help="the task id")
    parser.add_argument("--contract", default=None, help="the protocol contract (default: the one in --run's run.json)")
    parser.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        default=None,
        help="an aggregator's run folder: also check its store, updates and models against the chain",
    )


def run(args: argparse.Namespace) -> int:
    problems = run_audit(args.rpc_url, args.task, contract=args.contract, run_dir=args.run_dir)
    return 0 if not problems else 1
