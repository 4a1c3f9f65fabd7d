"""`stakelearn gas`: the gas of every protocol function and of one full epoch, for rounds
verified when submitted (eager) or only when challenged (optimistic)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.contracts.types import VERIFICATIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 16], help="n values to measure (default 8 16)")
    parser.add_argument(
        "--verification",
        choices=VERIFICATIONS,
        default="eager",
        help="eager: every function and the proven epoch; optimistic: the claimed epoch, each dispute step "
        "and the bonds, one line per figure (default eager)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="folder for gas.json and gas.md (gas-optimistic.*)"
    )


def run(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.experiments.gas import gas_text, run_gas, run_gas_optimistic

    if args.verification == "optimistic":
        print("\n".join(run_gas_optimistic(args.out, tuple(args.clients))))
    else:
        print(gas_text(run_gas(args.out, tuple(args.clients))))
    return 0
