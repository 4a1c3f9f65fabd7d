"""`stakelearn cache`: show the key cache ($STAKELEARN_HOME) or prune it."""

from __future__ import annotations

import argparse

from stakelearn.prover.cache import cache_entries, prune
from stakelearn.prover.srs import stakelearn_home

MB = 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prune", action="store_true", help="delete compiled circuits, their keys and interrupted set-ups"
    )
    parser.add_argument("--srs", action="store_true", help="with --prune: delete the SRS files too")


def run(args: argparse.Namespace) -> int:
    if args.prune:
        freed = prune(srs=args.srs)
        print(f"freed {freed / MB:,.1f} MB in {stakelearn_home()}" + ("" if args.srs else " (SRS files kept: --srs)"))
        return 0
    entries = cache_entries()
    print(f"{stakelearn_home()}: {sum(e.bytes for e in entries) / MB:,.1f} MB")
    for entry in entries:
        print(f"  {entry.kind:<8} {entry.bytes / MB:>10,.1f} MB  {entry.label:<40} {entry.path}")
    return 0
