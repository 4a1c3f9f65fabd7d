"""`stakelearn withdraw`: take out what a settled task credited this key (any party) and, with
``--stake``, a client's stake: the first call starts its unbonding, a call after the unbonding
period (and once the client is in no active task) pays it out."""

from __future__ import annotations

import argparse

from stakelearn.pipeline.cli.options import account, add_chain_options, protocol


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)
    parser.add_argument(
        "--stake", action="store_true", help="also withdraw the stake (request its unbonding, or take it once over)"
    )


def run(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.client import withdraw

    for line in withdraw(protocol(args), account(args), args.stake):
        print(line)
    return 0
