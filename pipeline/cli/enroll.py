"""`stakelearn enroll`: enroll in a task whose verifiers the protocol approved and, given the task's
circuit options, whose verifiers' code is the protocol's for those circuits."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.cli.options import account, add_chain_options, protocol
from stakelearn.pipeline.federation.task import MLP_ACCURACY_BATCH, MLP_CHUNK, MODELS, TASK_FIXED_POINT, model_options
from stakelearn.pipeline.node.client import TaskCircuitOptions, enroll

log = logging.getLogger(__name__)

# The options that describe the task's circuits; any of them makes enroll compare the verifiers' code.
TASK_CIRCUIT_OPTIONS = ("model", "scale_bits", "clip", "chunk", "accuracy_batch", "inner_cols", "srs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_chain_options(parser)
    parser.add_argument("--task", type=int, default=None, help="the task id (or --task-dir)")
    parser.add_argument(
        "--task-dir",
        type=Path,
        default=None,
        help="the task's folder (`task create`): its circuits are checked against the chain and the verifiers' code",
    )
    task_circuit = parser.add_argument_group(
        "the task's circuit options",
        "as `demo` posts a task (n, f, m, the rule and the evaluation set's size come from the task itself): any of "
        "them makes enroll compare the task's verifiers' code with the protocol's for these circuits",
    )
    task_circuit.add_argument("--model", choices=MODELS, default=None, help="the task's model (default softmax)")
    task_circuit.add_argument(
        "--scale-bits",
        type=int,
        default=None,
        help=f"the task's fixed-point resolution 2^-S (default {TASK_FIXED_POINT.scale_bits})",
    )
    task_circuit.add_argument(
        "--clip", type=float, default=None, help=f"the task's clip (default {TASK_FIXED_POINT.clip})"
    )
    task_circuit.add_argument(
        "--chunk",
        type=int,
        default=None,
        help=f"the task's chunk size C (default: one proof for softmax, {MLP_CHUNK} for mlp)",
    )
    task_circuit.add_argument(
        "--accuracy-batch",
        type=int,
        default=None,
        help=f"samples per accuracy proof (default: the whole set for softmax, {MLP_ACCURACY_BATCH} for mlp)",
    )
    task_circuit.add_argument("--inner-cols", type=int, default=None, help="ezkl cells per row (default 8)")
    task_circuit.add_argument(
        "--srs",
        type=Path,
        default=None,
        help="the task's ceremony SRS file (default: this machine's INSECURE local SRS)",
    )


def task_circuit_options(args: argparse.Namespace) -> TaskCircuitOptions | None:
    """The task's circuit options given on the command line; None if none was."""
    if all(getattr(args, name) is None for name in TASK_CIRCUIT_OPTIONS):
        return None
    return TaskCircuitOptions(
        **model_options(args.model or "softmax", args.chunk, args.accuracy_batch),
        fixed_point=FixedPoint(
            scale_bits=TASK_FIXED_POINT.scale_bits if args.scale_bits is None else args.scale_bits,
            clip=TASK_FIXED_POINT.clip if args.clip is None else args.clip,
        ),
        inner_cols=8 if args.inner_cols is None else args.inner_cols,
        ceremony_srs=args.srs,
    )


def run(args: argparse.Namespace) -> int:
    enrollee = account(args)
    if args.task_dir is not None:
        return _enroll_described(args, enrollee)
    if args.task is None:
        raise InputError("name the task: --task ID (with the task's circuit options) or --task-dir DIR")
    options = task_circuit_options(args)
    task = enroll(protocol(args), enrollee, args.task, options)
    if options is None:
        log.warning(
            f"stakelearn: warning: task {args.task}'s verifiers are a pair governance approved, but their code was not "
            "compared with the protocol's for the task's circuits: give the task's circuit options (--model ...) to compare it"
        )
    checked = "approved pair" if options is None else "the protocol's code for the task's circuits"
    print(f"{enrollee.address} enrolled in task {args.task} (n={task.n}; round verifier {task.verifier}, {checked})")
    return 0


def _enroll_described(args: argparse.Namespace, enrollee) -> int:
    """Enroll in the task a task folder describes, on the protocol --contract names, after checking
    the folder against the chain and the task's verifiers' code against the folder's circuits."""
    from stakelearn.pipeline.contracts.protocol import check_task_verifiers
    from stakelearn.pipeline.node.task_description import check_on_chain, read_task_folder
    from stakelearn.prover.circuit import prepare

    task = read_task_folder(args.task_dir)
    attached = protocol(args)
    if task.description.protocol != attached.tasks.address:
        raise InputError(
            f"{args.task_dir} describes a task on protocol {task.description.protocol}, not {attached.tasks.address}"
        )
    if args.task is not None and args.task != task.description.task_id:
        raise InputError(f"{args.task_dir} describes task {task.description.task_id}, not task {args.task}")
    check_on_chain(task, attached)
    task_id = task.description.task_id
    check_task_verifiers(attached, task_id, task.round(args.srs), prepare(task.accuracy_circuit(), args.srs))
    attached.execute(enrollee, "enroll", task_id)
    print(
        f"{enrollee.address} enrolled in task {task_id} (its folder and its verifiers' code checked against the chain)"
    )
    return 0
