"""`stakelearn watch`: watch an optimistic task's rounds, challenge any false or withheld claim
within its window and play the dispute to the end (pipeline.node.watcher)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.pipeline.cli.options import account, add_chain_options, protocol


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)
    parser.add_argument("--task", type=int, required=True, help="the optimistic task to watch")
    parser.add_argument("--poll", type=float, default=15.0, help="seconds between two looks at the chain (default 15)")
    parser.add_argument(
        "--until-epoch",
        type=int,
        default=None,
        metavar="N",
        help="stop once the task has N final epochs and no dispute of this watcher is open",
    )
    parser.add_argument("--once", action="store_true", help="look once, act, and exit")
    parser.add_argument("--srs", type=Path, default=None, help="the task's ceremony SRS file, to verify bundles")


def run(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.contracts.types import TaskStatus, Verification
    from stakelearn.pipeline.node.watcher import Watcher

    if args.poll <= 0:
        raise InputError(f"--poll must be a positive number of seconds, not {args.poll}")
    if args.until_epoch is not None and args.until_epoch < 1:
        raise InputError(f"--until-epoch must be 1 or more, not {args.until_epoch}")
    watcher_key = account(args)
    attached = protocol(args)
    count = attached.task_count()
    if not 1 <= args.task <= count:
        raise InputError(f"task {args.task} does not exist on the protocol at {attached.tasks.address} ({count} tasks)")
    if attached.task_params(args.task).verification != Verification.OPTIMISTIC:
        raise InputError(f"task {args.task} is verified eagerly (each round proven when submitted): nothing to watch")

    def say(line: str) -> None:
        print(line, flush=True)

    watcher = Watcher(attached, watcher_key, args.task, say=say, ceremony_srs=args.srs)
    rounds = attached.rounds.functions
    say(
        f"watching task {args.task} as {watcher_key.address} (challenge window {rounds.CHALLENGE_PERIOD().call()} s, "
        f"bond {rounds.CHALLENGER_BOND().call()} wei)"
    )
    while True:
        watcher.step()
        if args.once:
            return 0
        task = attached.task(args.task)
        if not watcher.disputes:
            if task.status not in (TaskStatus.OPEN, TaskStatus.ACTIVE):
                say(f"task {args.task} is {task.status.name.lower()}: no more rounds to watch")
                return 0
            if args.until_epoch is not None and task.epochs_run >= args.until_epoch:
                say(f"task {args.task} has {task.epochs_run} final epochs: done")
                return 0
        time.sleep(args.poll)
