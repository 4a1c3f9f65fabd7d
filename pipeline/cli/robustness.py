"""`stakelearn robustness`: the attack grid on the numpy reference: accuracy, flags, and the flag
ratio chosen on some seeds and judged on others."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stakelearn.circuits.krum import RULES
from stakelearn.pipeline.experiments.robustness.findings import findings
from stakelearn.pipeline.experiments.robustness.run import rewrite_report, run_robustness
from stakelearn.pipeline.federation.attacks import ATTACKS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, default=16, help="clients n, >= 16 (default 16)")
    parser.add_argument(
        "--byzantine",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4, 5, 6],
        help="f values; attackers = f (default 0 1 2 3 4 5 6: every f that n = 16 allows, n > 2f + 2)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument(
        "--choosing-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds the flag ratio is chosen on (default 0 1 2 3 4)",
    )
    parser.add_argument(
        "--judging-seeds",
        type=int,
        nargs="+",
        default=[5, 6, 7, 8, 9],
        help="seeds the chosen ratio is judged on, none of the choosing ones (default 5 6 7 8 9)",
    )
    parser.add_argument(
        "--alphas",
        type=float,
        nargs="*",
        default=[0.1, 0.5, 1.0],
        help="Dirichlet concentrations of the non-IID splits, beside IID (default 0.1 0.5 1.0; none: IID only)",
    )
    parser.add_argument(
        "--aggregations",
        nargs="+",
        choices=RULES,
        default=list(RULES),
        help=f"aggregation rules (default both: {' '.join(RULES)})",
    )
    parser.add_argument(
        "--attacks",
        nargs="+",
        default=list(ATTACKS),  # the registry's names: each attack once
        help=f"attacks (default all: {' '.join(ATTACKS)})",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes running the grid, one torch thread each (default 2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("robustness-results"),
        help="folder for the report robustness.md and its data results/robustness.json and .png "
        "(default robustness-results; docs/ is laid out the same)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite OUT/robustness.md and OUT/results/robustness.png from OUT/results/robustness.json",
    )
    parser.add_argument("--json", action="store_true", help="also print the choice and the judgement as JSON")


def run(args: argparse.Namespace) -> int:
    if args.report_only:
        analysis = rewrite_report(args.out)
    else:
        analysis = _run_sweep(args)
    print("\n".join(findings(analysis)))
    if args.json:
        print(json.dumps({"choice": analysis["choice"], "judgement": analysis["judgement"]}, indent=2))
    return 0


def _run_sweep(args: argparse.Namespace) -> dict:
    return run_robustness(
        out=args.out,
        clients=args.clients,
        byzantine=tuple(args.byzantine),
        epochs=args.epochs,
        choosing_seeds=tuple(args.choosing_seeds),
        judging_seeds=tuple(args.judging_seeds),
        alphas=tuple(args.alphas),
        aggregations=tuple(args.aggregations),
        attacks=tuple(args.attacks),
        workers=args.workers,
    )
