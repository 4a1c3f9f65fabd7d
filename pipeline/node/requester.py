"""The requester's steps: prepare and post a task (with a salted commitment to its private
evaluation set), and after training reveal that set on chain so the final model's accuracy can be
proven."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.digits import build, export_onnx, initial_parameters
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.contracts.protocol import Protocol, evaluation_commitment
from stakelearn.pipeline.contracts.types import TaskParams, Verification
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.pipeline.node.run_folder import EVALUATION_FILE, model_path, npz_bytes, save_array, task_dir
from stakelearn.pipeline.node.task_description import (
    TASK_FILE,
    TaskDescription,
    Terms,
    model_hash,
    read_task_folder,
    sha256_hex,
    spec_hash,
    write_task_folder,
)
from stakelearn.prover.accuracy import evaluation_values
from stakelearn.prover.chunked import ChunkCircuit


def keep_evaluation_set(x: np.ndarray, y: np.ndarray, secret: Path) -> bytes:
    """Keep the evaluation set in ``secret`` (.npz: ``x``, the inputs as the accuracy circuit's
    integers, ``y``, the labels, and ``salt``) with a fresh salt, which hides the set (it may be
    guessable: public data) until it is revealed; the commitment to it. Readable by its owner only."""
    salt = os.urandom(32)
    write_bytes_atomic(secret, npz_bytes(x=x, y=y, salt=np.frombuffer(salt, np.uint8)))
    secret.chmod(0o600)
    return evaluation_commitment(salt, evaluation_values(x, y))


def kept_evaluation_set(secret: Path) -> tuple[np.ndarray, np.ndarray, bytes]:
    """The inputs, labels and salt ``secret`` keeps (:func:`keep_evaluation_set`)."""
    try:
        with np.load(secret, allow_pickle=False) as kept:
            return kept["x"], kept["y"], kept["salt"].tobytes()
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{secret}: not a requester's secret file (x, y, salt) ({error})") from None


def prepare_task(
    protocol: Protocol,
    config: TaskConfig,
    circuits: tuple,
    evaluation: tuple[np.ndarray, np.ndarray],
    out: Path,
    fee_per_epoch: int,
) -> tuple[TaskDescription, TaskParams]:
    """The demo's task: the digits model's initial parameters (saved as the run folder's epoch
    0), its ``evaluation`` set (pixels, labels) kept secret in the run folder, the task's public
    description over its ``circuits`` (round, accuracy) and the parameters of ``createTask``
    naming them and the protocol's verifier pair. The task folder (``run_folder.task_dir``) is
    written now and completed once the task is posted (:func:`record_posted`)."""
    initial = initial_parameters(config.hidden, config.seed)
    save_array(model_path(out, 0), initial)
    pixels, labels = evaluation
    evaluation_set = keep_evaluation_set(pixels, labels, out / EVALUATION_FILE)
    staging = out / "task-model.staging.onnx"
    export_onnx(initial, config.hidden, staging)
    model = staging.read_bytes()
    staging.unlink()
    layout = [(name, tuple(t.shape)) for name, t in build(initial, config.hidden).state_dict().items()]
    terms = Terms(
        config.epochs, fee_per_epoch, round(config.target_accuracy * 10_000), len(labels), config.verification
    )
    round_circuit, accuracy_circuit = circuits
    description = describe_task(
        protocol, round_circuit, config.dimension, config.fixed_point, accuracy_circuit, model, layout, terms
    )
    pair = (protocol.round_verifier.contract.address, protocol.accuracy_verifier.address)
    write_task_folder(task_dir(out), description, model, initial)
    return description, task_params(description, initial, evaluation_set, pair)


def record_posted(folder: Path, task_id: int, params: TaskParams) -> TaskDescription:
    """Complete a prepared task folder once its task is posted as ``task_id`` with ``params``."""
    task = read_task_folder(folder)
    posted = task.description.posted(
        task_id, {"round_verifier": params.verifier, "accuracy_verifier": params.accuracy_verifier}
    )
    write_json_atomic(folder / TASK_FILE, posted.to_json())
    return posted


def post_task(protocol: Protocol, account, params: TaskParams) -> int:
    """Create the task, paying the base fee and escrowing its fees; return its id."""
    receipt = protocol.execute(account, "createTask", params.as_abi(), value=protocol.base_fee() + params.escrow)
    (created,) = protocol.events_in(receipt, "TaskCreated")
    return created["args"]["taskId"]


def reveal_evaluation_set(protocol: Protocol, account, task_id: int, secret: Path) -> None:
    """Reveal the evaluation set and salt kept in ``secret`` (:func:`keep_evaluation_set`)."""
    x, y, salt = kept_evaluation_set(secret)
    values = evaluation_values(x, y)
    protocol.execute(account, "revealEvaluationSet", task_id, salt, values)


def revealed_evaluation_set(protocol: Protocol, task_id: int) -> tuple[bytes, list[int]] | None:
    """The salt and values a requester revealed on chain (read from the reveal's calldata)."""
    logs = protocol.logs("EvaluationSetRevealed", taskId=task_id)
    if not logs:
        return None
    _, call = protocol.tasks.decode_function_input(protocol.chain.transaction(logs[0]["transactionHash"])["input"])
    return bytes(call["salt"]), list(call["values"])


def describe_task(
    protocol: Protocol,
    round_circuit,
    d: int,
    fixed_point: FixedPoint,
    accuracy_circuit,
    model: bytes,
    layout,
    terms: Terms,
) -> TaskDescription:
    """The public description of a task not yet posted: its circuits, model and terms on ``protocol``."""
    kind = "chunk" if isinstance(round_circuit, ChunkCircuit) else "round"
    return TaskDescription(
        chain_id=protocol.chain.chain_id,
        protocol=protocol.tasks.address,
        round_kind=kind,
        round_circuit=asdict(round_circuit),
        d=d,
        fixed_point=fixed_point,
        accuracy_circuit=accuracy_circuit.description(),
        layout=tuple((name, tuple(shape)) for name, shape in layout),
        model_sha256=sha256_hex(model),
        terms=terms,
    )


def task_params(
    description: TaskDescription, initial: np.ndarray, evaluation_set: bytes, pair: tuple[str, str]
) -> TaskParams:
    """createTask's parameters for a described task, its verifier ``pair`` and the requester's
    commitment to its evaluation set."""
    circuit = description.circuit()
    k = circuit.params
    return TaskParams(
        model_spec_hash=spec_hash(description),
        n=k.n,
        f=k.f,
        m=k.m,
        aggregation=k.rule_id,
        desired_accuracy_bps=description.terms.target_accuracy_bps,
        max_epochs=description.terms.epochs,
        fee_per_epoch=description.terms.fee_per_epoch,
        verifier=pair[0],
        initial_model=model_hash(initial),
        evaluation_set=evaluation_set,
        evaluation_size=description.terms.evaluation_size,
        accuracy_verifier=pair[1],
        verification=Verification[description.terms.verification.upper()],
    )
