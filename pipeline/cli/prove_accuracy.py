"""`stakelearn prove-accuracy`: prove how many samples of an evaluation set a run's final model gets right."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.node.task_lifecycle import prove_run_accuracy
from stakelearn.prover.accuracy import SUMMARY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", dest="run_dir", type=Path, required=True, help="the aggregator's run folder (demo --out)"
    )
    parser.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="evaluation set .npz with 'x' (N x 64 grey levels 0..16) and 'y' (labels) "
        "(default: the requester's set in the run folder)",
    )
    parser.add_argument("--out", type=Path, required=True, help="new folder for the proof")


def run(args: argparse.Namespace) -> int:
    prove_run_accuracy(args.run_dir, args.evaluation, args.out)
    print((args.out / SUMMARY).read_text(), end="")
    print(f"accuracy proof written to {args.out}")
    return 0
