"""`stakelearn signer`: a client's signer beside its SuperNode, which holds the staked key and signs
only update commitments, for enrolled Active tasks and the open epoch of its own node, one per
task and epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.pipeline.cli.options import account, add_chain_options, protocol
from stakelearn.pipeline.node.signer import Signer, serve_signer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)
    parser.add_argument(
        "--slashing-protection",
        type=Path,
        required=True,
        metavar="FILE",
        help="the SQLite file recording every commitment signed (created if missing); keep it across restarts",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one, printed at start)")


def run(args: argparse.Namespace) -> int:
    signer = Signer(protocol(args), account(args), args.slashing_protection)
    return serve_signer(signer, args.port, say_line=lambda line: print(line, flush=True))
