"""`stakelearn submit`: the aggregator submits a proven round folder (with signed commitments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.cli.options import account, add_chain_options, protocol
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION
from stakelearn.pipeline.node.aggregator import submit_round


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="a round folder proven with --signed")
    add_chain_options(parser)
    parser.add_argument("--task", type=int, required=True, help="the task id")
    parser.add_argument("--epoch", type=int, required=True, help="the epoch the round is for")
    parser.add_argument(
        "--chunks-per-transaction",
        type=int,
        default=CHUNKS_PER_TRANSACTION,
        help=f"a chunked round's chunk proofs staged per transaction (default {CHUNKS_PER_TRANSACTION}; fewer if a "
        "block's gas limit is low)",
    )


def run(args: argparse.Namespace) -> int:
    receipt = submit_round(
        protocol(args), account(args), args.task, args.epoch, args.folder, args.chunks_per_transaction
    )
    print(
        f"epoch {args.epoch} of task {args.task} submitted: {receipt['gasUsed']:,} gas, "
        f"transaction 0x{bytes(receipt['transactionHash']).hex()}"
    )
    return 0
