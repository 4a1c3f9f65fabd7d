"""`stakelearn stake`: a client's first step, staking STAKE_AMOUNT (or topping a slashed stake up)."""

from __future__ import annotations

import argparse

from stakelearn.pipeline.cli.options import account, add_chain_options, protocol
from stakelearn.pipeline.node.client import stake


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)


def run(args: argparse.Namespace) -> int:
    staker = account(args)
    sent = stake(protocol(args), staker)
    print(f"{staker.address} staked {sent} wei" if sent else f"{staker.address} already holds the full stake")
    return 0
