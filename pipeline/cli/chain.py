"""`stakelearn chain`: a local anvil node on 127.0.0.1, until a signal stops it."""

from __future__ import annotations

import argparse

from stakelearn.pipeline.chain.anvil import serve_anvil


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=8545,
        help="port on 127.0.0.1 for anvil's JSON-RPC (default 8545); a taken port is an error",
    )


def run(args: argparse.Namespace) -> int:
    return serve_anvil(args.port, say=lambda line: print(line, flush=True))
