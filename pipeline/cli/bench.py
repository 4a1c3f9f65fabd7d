"""`stakelearn bench`: measure rows, time, memory and gas of the round circuit against a naive
baseline, or (``--profile chunked``) of rounds proven in chunks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION
from stakelearn.pipeline.experiments.bench.chunked import DEFAULT_WORKERS, run_chunked_bench
from stakelearn.pipeline.experiments.bench.harness import Outcome
from stakelearn.pipeline.experiments.bench.round import run_bench

# The options that go with --profile chunked only.
CHUNKED_ONLY = ("d", "shapes", "per_transaction", "workers", "chain", "work")


def int_list(text: str) -> list[int]:
    """A comma-separated list of integers, e.g. ``1000,10000,100000``."""
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def shape_list(text: str) -> list[tuple[int, int]]:
    """Comma-separated chunk shapes NxC, e.g. ``16x128,8x1024``."""
    try:
        return [tuple(int(side) for side in part.split("x", 1)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected shapes NxC separated by commas (e.g. 16x128), got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=["quick", "standard", "rules", "accuracy", "full", "chunked"],
        default="standard",
        help="quick: tiny points; standard: (8,256), (16,1024), both rules, and the accuracy proof; "
        "rules: Multi-Krum and NNM + Multi-Krum at (16,1024); "
        "accuracy: the accuracy proof for 64, 100, 360 samples; full: n 4..32 x d 64..4096; "
        "chunked: rounds proven in chunks, n=8 (C 256, 1024) and n=16 (C 64, 128) x d 1024, 4096, "
        "with gas on the embedded EVM and an extrapolation to d = 10^6, 10^7",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="same as --profile quick (a minute or two); with --profile chunked: one tiny point (n=5, C=8, d=24)",
    )
    _add_chunked_arguments(parser)
    parser.add_argument(
        "--limit", type=float, default=None, help="seconds per point before it is recorded as over the limit"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.jsonl/.json/.md/.png (default bench-results, or bench-results-chunked for "
        "--profile chunked, so that neither profile overwrites the other's results)",
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")


def _add_chunked_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of --profile chunked (CHUNKED_ONLY)."""
    parser.add_argument(
        "--d",
        type=int_list,
        default=None,
        metavar="D,D,...",
        help="--profile chunked: the update lengths to measure (default 1024,4096), e.g. 1000,10000,100000",
    )
    parser.add_argument(
        "--shapes",
        type=shape_list,
        default=None,
        metavar="NxC,...",
        help="--profile chunked: the chunk shapes to measure (default 8x256,8x1024,16x64,16x128)",
    )
    parser.add_argument(
        "--chain",
        choices=["embedded", "anvil"],
        default=None,
        help="--profile chunked: verify on the embedded py-evm (default) or on a local anvil node the bench "
        "starts and stops (seconds instead of minutes for thousands of chunks)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="--profile chunked: keep the keys and the proven chunks in this folder, and resume there: a "
        "run stopped after hours continues at its first unproven chunk (the seconds are those of the chunks "
        "each run proves)",
    )
    parser.add_argument(
        "--per-transaction",
        type=int,
        default=None,
        help=f"--profile chunked: chunk proofs per staging transaction (default {CHUNKS_PER_TRANSACTION})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"--profile chunked: chunks proven at once (default {DEFAULT_WORKERS}: a chunk's seconds are one prover's)",
    )


def default_out(profile: str) -> Path:
    """Where a profile's results go unless --out says: the chunked profile writes files of the same
    names as the others, so it has a folder of its own."""
    return Path("bench-results-chunked" if profile == "chunked" else "bench-results")


def run(args: argparse.Namespace) -> int:
    args.out = args.out or default_out(args.profile)
    if args.profile == "chunked":
        outcome = _run_chunked(args)
        as_json = outcome.results  # --json: the whole results.json, as before
    elif any(getattr(args, name) is not None for name in CHUNKED_ONLY):
        raise InputError("--d, --shapes, --per-transaction, --workers, --chain and --work go with --profile chunked")
    else:
        profile = "quick" if args.quick else args.profile
        outcome = run_bench(profile=profile, out=args.out, limit_s=args.limit, show=_show)
        as_json = outcome.rows  # --json: the points
    print(outcome.report)
    if args.json:
        print(json.dumps(as_json, indent=2))
    return 0 if all(row["status"] == "ok" for row in outcome.rows) or not args.quick else 1


def _show(line: str) -> None:
    """A finished job's row of the table, on stdout as it comes."""
    print(line, flush=True)


def _run_chunked(args: argparse.Namespace) -> Outcome:
    """Measure --profile chunked (its rows: the shapes, then the points)."""
    per_transaction = CHUNKS_PER_TRANSACTION if args.per_transaction is None else args.per_transaction
    workers = DEFAULT_WORKERS if args.workers is None else args.workers
    if per_transaction < 1 or workers < 1 or any(d < 1 for d in args.d or []):
        raise InputError("--d, --per-transaction and --workers must be >= 1")
    if any(len(shape) != 2 or min(shape) < 1 for shape in args.shapes or []):
        raise InputError("--shapes takes N x C with both >= 1, e.g. 16x128")
    return run_chunked_bench(
        args.out,
        quick=args.quick,
        d_values=args.d,
        per_transaction=per_transaction,
        workers=workers,
        limit_s=args.limit,
        shapes_wanted=args.shapes,
        chain_kind=args.chain or "embedded",
        work=args.work,
        show=_show,
    )
