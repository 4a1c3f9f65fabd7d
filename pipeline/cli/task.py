"""`stakelearn task`: the requester's commands, and the settlement anyone may carry.

- ``create``: from the requester's ONNX model and evaluation set, write the public task folder
  (``node.task_description``; no key in it) and the requester's secret file (its evaluation set
  and salt), then post the task on a verifier pair governance approved for its shape;
- ``status``: where a task stands, from the chain alone;
- ``reveal``: the requester reveals its evaluation set's salt and commitments on chain once
  training is over, and publishes the set itself (a file beside the task folder, for the provers);
- ``settle``: prove the final model's accuracy on the published set and submit it (anyone holding
  the final aggregate; the aggregator in practice), or, once the deadline passed, settle.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.pipeline.cli.options import account, add_key_options, add_verification_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, help="what to do with a task")
    create = actions.add_parser("create", help="write the task folder and post the task (the requester)")
    _add_create_arguments(create)
    status = actions.add_parser("status", help="where a task stands, read from the chain")
    _add_task_folder(status)
    reveal = actions.add_parser("reveal", help="reveal the evaluation set once training is over (the requester)")
    _add_task_folder(reveal)
    add_key_options(reveal, whose="the requester's key")
    reveal.add_argument("--secret", type=Path, required=True, help="the secret file `task create` wrote")
    reveal.add_argument(
        "--publish",
        type=Path,
        default=None,
        help="where to write the set for the provers (default: TASK_DIR.evaluation.npz beside the task folder)",
    )
    settle = actions.add_parser(
        "settle",
        help="prove the final model's accuracy on the revealed set and submit it, or settle after the deadline",
    )
    _add_task_folder(settle)
    add_key_options(settle, whose="the key that pays for the transaction")
    settle.add_argument(
        "--aggregate",
        type=Path,
        default=None,
        help="the last round's aggregate (.npy integers, as the aggregator saved it); not needed after the deadline",
    )
    settle.add_argument("--out", type=Path, default=None, help="new folder for the accuracy proof")
    settle.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="the set the requester published (default: TASK_DIR.evaluation.npz beside the task folder)",
    )


def published_path(task_dir: Path) -> Path:
    """Where the requester publishes its evaluation set by default: beside the task folder."""
    return task_dir.with_name(task_dir.name + ".evaluation.npz")


def _add_task_folder(command: argparse.ArgumentParser) -> None:
    command.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    command.add_argument("--task-dir", type=Path, required=True, help="the task folder `task create` wrote")


def _add_create_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    create.add_argument("--contract", required=True, help="the protocol contract's address")
    add_key_options(create, whose="the requester's key")
    create.add_argument("--model", type=Path, required=True, help="the model: ONNX with its initial weights")
    create.add_argument(
        "--evaluation", type=Path, required=True, help="the private evaluation set: .npz with x (model inputs) and y"
    )
    create.add_argument("--clients", "-n", type=int, required=True, help="clients n")
    create.add_argument("--byzantine", "-f", type=int, required=True, help="tolerated Byzantine clients f (n > 2f+2)")
    create.add_argument("--select", "-m", type=int, default=None, help="updates Multi-Krum averages (default n - f)")
    create.add_argument("--epochs", type=int, required=True, help="epochs the requester pays for")
    create.add_argument("--target-accuracy", type=float, required=True, help="the accuracy that pays in full, 0..1")
    create.add_argument("--fee-per-epoch-wei", type=int, required=True, help="the fee per epoch, in wei")
    create.add_argument(
        "--chunk", type=int, default=0, help="prove rounds in chunks of C coordinates (default: one proof)"
    )
    create.add_argument("--scale-bits", type=int, default=9, help="the updates' fixed point 2^-S (default 9)")
    create.add_argument("--clip", type=float, default=2.0, help="parameters are clipped to +-CLIP (default 2.0)")
    create.add_argument("--inner-cols", type=int, default=2, help="ezkl cells per row (default 2)")
    create.add_argument(
        "--samples-per-proof", type=int, default=None, help="evaluation samples per accuracy proof (default: all)"
    )
    create.add_argument("--srs", type=Path, default=None, help="the ceremony SRS file (default: INSECURE local SRS)")
    add_verification_option(create)
    create.add_argument("--out", type=Path, required=True, help="the task folder to write (public)")
    create.add_argument(
        "--secret", type=Path, default=None, help="the requester's secret file (default: OUT.secret.npz beside OUT)"
    )
    create.add_argument(
        "--prepare-only", action="store_true", help="write the folders and stop: governance approves the shape first"
    )


def run(args: argparse.Namespace) -> int:
    return {"create": _create, "status": _status, "reveal": _reveal, "settle": _settle}[args.action](args)


def _attached(args: argparse.Namespace, payer=None):
    """The task folder and the protocol it names, checked against the chain."""
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.protocol import attach_protocol
    from stakelearn.pipeline.node.task_description import check_on_chain, read_task_folder

    task = read_task_folder(args.task_dir)
    protocol = attach_protocol(Chain.rpc(args.rpc_url, payer), {"protocol": task.description.protocol})
    check_on_chain(task, protocol)
    return task, protocol


def _create(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.protocol import attach_protocol
    from stakelearn.pipeline.node.task_creation import CreateRequest, create_task

    secret = args.secret or args.out.with_name(args.out.name + ".secret.npz")
    request = CreateRequest(
        model=args.model,
        evaluation=args.evaluation,
        n=args.clients,
        f=args.byzantine,
        m=args.select if args.select is not None else args.clients - args.byzantine,
        epochs=args.epochs,
        target_accuracy=args.target_accuracy,
        fee_per_epoch=args.fee_per_epoch_wei,
        chunk=args.chunk,
        scale_bits=args.scale_bits,
        clip=args.clip,
        inner_cols=args.inner_cols,
        samples_per_proof=args.samples_per_proof,
        ceremony_srs=args.srs,
        verification=args.verification,
    )
    requester = account(args)
    protocol = attach_protocol(Chain.rpc(args.rpc_url, requester), {"protocol": args.contract})
    posted = create_task(protocol, requester, request, args.out, secret, post=not args.prepare_only)
    if posted is None:
        print(f"task folder {args.out} and secret {secret} written; not posted (--prepare-only)")
        return 0
    print(f"task {posted.task_id} posted on protocol {posted.protocol} (chain id {posted.chain_id})")
    print(f"task folder {args.out} (public: hand it to the clients and the aggregator); secret {secret} (keep it)")
    return 0


def _status(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.task_lifecycle import task_status_lines

    task, protocol = _attached(args)
    for line in task_status_lines(protocol, task.description.task_id):
        print(line)
    return 0


def _reveal(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.requester import reveal_evaluation_set

    requester = account(args)
    task, protocol = _attached(args, requester)
    task_id = task.description.task_id
    if protocol.task(task_id).requester != requester.address:
        raise InputError(f"only task {task_id}'s requester reveals its evaluation set; this key is {requester.address}")
    published = args.publish or published_path(args.task_dir)
    reveal_evaluation_set(protocol, requester, task_id, args.secret, published)
    print(
        f"task {task_id}: evaluation set revealed (its commitments on chain, the set published at {published}); "
        "anyone may now prove the final model's accuracy on it"
    )
    return 0


def _settle(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.task_lifecycle import settle_task

    payer = account(args)
    task, protocol = _attached(args, payer)
    print(
        settle_task(protocol, task, payer, args.aggregate, args.out, args.evaluation or published_path(args.task_dir))
    )
    return 0
