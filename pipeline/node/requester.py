"""The requester's steps: prepare and post a task (with a salted commitment to its private
evaluation set's commitments under the accuracy circuit), and after training reveal the salt and
those commitments on chain and publish the set off chain, so that anyone can prove the final
model's accuracy on it."""

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
from stakelearn.prover.accuracy import evaluation_set_commitments
from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.commitments import COMMITMENT_BYTES


def keep_evaluation_set(x: np.ndarray, y: np.ndarray, secret: Path, prepared_accuracy) -> bytes:
    """Keep the evaluation set in ``secret`` (.npz: ``x``, the inputs as the accuracy circuit's
    integers, ``y``, the labels, ``salt``, and ``commitments``, the set's commitments under the
    prepared accuracy circuit, as its proofs will carry them) with a fresh salt, which hides the
    set (it may be guessable: public data) until it is revealed; the task's commitment to it.
    Readable by its owner only."""
    salt = os.urandom(32)
    commitments = evaluation_set_commitments(x, y, prepared_accuracy)
    packed = np.frombuffer(b"".join(commitments), np.uint8).reshape(len(commitments), COMMITMENT_BYTES)
    write_bytes_atomic(secret, npz_bytes(x=x, y=y, salt=np.frombuffer(salt, np.uint8), commitments=packed))
    secret.chmod(0o600)
    return evaluation_commitment(salt, commitments)


def kept_evaluation_set(secret: Path) -> tuple[np.ndarray, np.ndarray, bytes]:
    """The inputs, labels and salt ``secret`` keeps (:func:`keep_evaluation_set`)."""
    try:
        with np.load(secret, allow_pickle=False) as kept:
            return kept["x"], kept["y"], kept["salt"].tobytes()
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{secret}: not a requester's secret file (x, y, salt) ({error})") from None


def kept_set_commitments(secret: Path) -> list[bytes]:
    """The set's commitments ``secret`` keeps, in proof order (:func:`keep_evaluation_set`)."""
    try:
        with np.load(secret, allow_pickle=False) as kept:
            return [row.tobytes() for row in kept["commitments"]]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(
            f"{secret}: no evaluation set commitments in it ({error}): it was written for another version"
        ) from None


def publish_evaluation_set(secret: Path, published: Path) -> Path:
    """Write the set ``secret`` keeps (x, y: no salt) to ``published``, for anyone to prove on."""
    x, y, _ = kept_evaluation_set(secret)
    return write_bytes_atomic(published, npz_bytes(x=x, y=y))


def published_evaluation_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The set a requester published (:func:`publish_evaluation_set`): the circuit's integers, labels."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["x"], dtype=np.int64), np.asarray(data["y"], dtype=np.int64)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not a published evaluation set (.npz with x and y) ({error})") from None


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
    written now and completed once the task is posted (:func:`record_posted`). ``circuits`` is
    the round circuit and the prepared accuracy circuit (the set's commitments are its)."""
    initial = initial_parameters(config.hidden, config.seed)
    save_array(model_path(out, 0), initial)
    pixels, labels = evaluation
    round_circuit, prepared_accuracy = circuits
    evaluation_set = keep_evaluation_set(pixels, labels, out / EVALUATION_FILE, prepared_accuracy)
    staging = out / "task-model.staging.onnx"
    export_onnx(initial, config.hidden, staging)
    model = staging.read_bytes()
    staging.unlink()
    layout = [(name, tuple(t.shape)) for name, t in build(initial, config.hidden).state_dict().items()]
    terms = Terms(
        config.epochs, fee_per_epoch, round(config.target_accuracy * 10_000), len(labels), config.verification
    )
    description = describe_task(
        protocol, round_circuit, config.dimension, config.fixed_point, prepared_accuracy.circuit, model, layout, terms
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


def reveal_evaluation_set(protocol: Protocol, account, task_id: int, secret: Path, published: Path) -> None:
    """Publish the set kept in ``secret`` (:func:`keep_evaluation_set`) at ``published``, then
    reveal its salt and commitments on chain (the values never go on chain)."""
    _, _, salt = kept_evaluation_set(secret)
    commitments = kept_set_commitments(secret)
    publish_evaluation_set(secret, published)
    protocol.execute(account, "revealEvaluationSet", task_id, salt, b"".join(commitments))


def revealed_evaluation_set(protocol: Protocol, task_id: int) -> tuple[bytes, list[bytes]] | None:
    """The salt and set commitments a requester revealed on chain (its reveal's event)."""
    logs = protocol.logs("EvaluationSetRevealed", taskId=task_id)
    if not logs:
        return None
    args = logs[0]["args"]
    packed = bytes(args["setCommitments"])
    commitments = [packed[i : i + COMMITMENT_BYTES] for i in range(0, len(packed), COMMITMENT_BYTES)]
    return bytes(args["salt"]), commitments


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
