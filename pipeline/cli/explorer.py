"""`stakelearn explorer`: serve a read-only page of a protocol's tasks on 127.0.0.1
(pipeline.explorer), until interrupted. It holds no key and sends no transaction."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stakelearn.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node to read")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--contract", default=None, help="the protocol contract's address")
    where.add_argument(
        "--task-dir", type=Path, default=None, help="a task folder (`task create`): its protocol, and its task shown"
    )
    where.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        default=None,
        help="a demo run folder: its protocol and task, and its test accuracy per epoch once the folder "
        "checks against the chain (as `audit --run`)",
    )
    parser.add_argument("--task", type=int, default=None, help="the task the page opens on (default: the folder's)")
    parser.add_argument("--port", type=int, default=8600, help="port on 127.0.0.1 (default 8600; 0: a free one)")
    parser.add_argument("--refresh", type=float, default=5.0, help="seconds between two looks at the chain (default 5)")


def run(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.explorer.server import Explorer, RunningServer

    if args.refresh <= 0:
        raise InputError(f"--refresh must be a positive number of seconds, not {args.refresh}")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be 0..65535, not {args.port}")
    address, task_id = where(args)
    explorer = Explorer(lambda: connect(args.rpc_url, address), args.rpc_url, args.run_dir, args.refresh)
    with RunningServer(explorer, args.port) as server:
        page = server.url + (f"?task={task_id}" if task_id is not None else "")
        print(f"explorer of protocol {address} on {args.rpc_url}: {page} (read-only; Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(3600)


def where(args: argparse.Namespace) -> tuple[str, int | None]:
    """The protocol's address and the task to open, from --contract, --task-dir or --run."""
    if args.contract is not None:
        return args.contract, args.task
    if args.task_dir is not None:
        from stakelearn.pipeline.node.task_description import read_task_folder

        description = read_task_folder(args.task_dir).description
        return description.protocol, args.task if args.task is not None else description.task_id
    from stakelearn.pipeline.node.run_folder import load_run

    run = load_run(args.run_dir)
    if args.task is not None and args.task != run["task_id"]:
        raise InputError(f"{args.run_dir} is task {run['task_id']}'s run, not task {args.task}'s")
    return run["addresses"]["protocol"], run["task_id"]


def connect(rpc_url: str, address: str):
    """The protocol at ``address`` on the node at ``rpc_url``; NodeUnreachable if the node does not answer."""
    from web3.exceptions import BadFunctionCallOutput, ContractLogicError

    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.protocol import attach_protocol
    from stakelearn.pipeline.explorer.server import NodeUnreachable

    try:
        chain = Chain.rpc(rpc_url)
    except InputError as error:
        raise NodeUnreachable(str(error)) from None
    try:
        return attach_protocol(chain, {"protocol": address})
    except (BadFunctionCallOutput, ContractLogicError):  # code there, but not the protocol's
        raise InputError(
            f"the contract at {address} is not a StakeLearn protocol: name the protocol's address"
        ) from None
