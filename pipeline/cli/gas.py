"""`stakelearn gas`: the gas of every protocol function and of one full epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.experiments.gas import gas_text, run_gas


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 16], help="n values to measure (default 8 16)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for gas.json and gas.md")


def run(args: argparse.Namespace) -> int:
    print(gas_text(run_gas(args.out, tuple(args.clients))))
    return 0
