"""The requester's ``task create``: a task from its own ONNX model and private evaluation set.

Two steps, so that governance can approve the task's shape in between: prepare the public task
folder (``node.task_description``) and the requester's secret file (its evaluation set, as the
accuracy circuit's integers, a fresh salt, and the set's commitments under the accuracy circuit), then post the task on a verifier pair that
governance approved and whose code is the protocol's for the folder's circuits. Run again with
the same arguments, it reuses the prepared folder and secret (never a new salt for a set
already committed to in a folder), and refuses a folder that describes another task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import KrumParams
from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.contracts.protocol import Protocol, approved_pair_for, evaluation_commitment
from stakelearn.pipeline.node.requester import (
    describe_task,
    keep_evaluation_set,
    kept_evaluation_set,
    kept_set_commitments,
    post_task,
    record_posted,
    task_params,
)
from stakelearn.pipeline.node.task_description import (
    TASK_FILE,
    TaskDescription,
    Terms,
    read_task_folder,
    write_task_folder,
)
from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.onnx_accuracy import OnnxAccuracyCircuit, paired_chunked_onnx_circuits, paired_onnx_circuits
from stakelearn.prover.rounds import round_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreateRequest:
    """What a requester asks for: its model and set, the round's shape, the terms, the circuits' knobs."""

    model: Path  # ONNX, its initializers the initial model
    evaluation: Path  # .npz: x (the model's inputs, batch first), y (integer labels)
    n: int
    f: int
    m: int
    epochs: int
    target_accuracy: float
    fee_per_epoch: int
    chunk: int = 0
    scale_bits: int = 9
    clip: float = 2.0
    inner_cols: int = 2
    samples_per_proof: int | None = None
    ceremony_srs: Path | None = None
    aggregation: str = "multikrum"
    verification: str = "eager"

    def __post_init__(self) -> None:
        if not 0.0 < self.target_accuracy <= 1.0:
            raise InputError(f"the target accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.epochs < 1 or self.fee_per_epoch < 0:
            raise InputError("need --epochs >= 1 and --fee-per-epoch-wei >= 0")


def load_evaluation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The requester's evaluation set: ``x`` as the model takes it (batch first) and ``y``, integer labels."""
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"])
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"{path}: not an evaluation set (.npz with 'x' and 'y') ({error})") from None
    if len(x) != len(y) or len(y) == 0 or y.ndim != 1 or np.any(y != np.round(y)) or y.min() < 0:
        raise InputError(f"{path}: x and y must hold the same number (> 0) of samples, y non-negative integer labels")
    return x, y.astype(np.int64)


def task_circuits(request: CreateRequest, model: bytes, x: np.ndarray, samples: int) -> tuple:
    """The round's circuit and the model's accuracy circuit, paired (one logrows, one commitment),
    calibrated for the range of the quantized set."""
    fixed_point = FixedPoint(scale_bits=request.scale_bits, clip=request.clip)
    weight = KrumParams(request.n, request.f, request.m, request.aggregation).weight
    # A probe of the model's circuit (the ops checked, the layout read) for d and the input scale.
    probe = OnnxAccuracyCircuit.of(
        model, samples=samples, scale_bits=request.scale_bits, model_bound=1, input_range=(0, 0), m=weight
    )
    d, quantized = probe.d, probe.quantize_samples(x)
    input_range = (int(quantized.min()), int(quantized.max()))
    if request.chunk:
        chunk = ChunkCircuit(request.n, request.f, request.m, request.chunk, fixed_point.max_int, request.inner_cols)
        return (
            *paired_chunked_onnx_circuits(chunk, model, samples, request.scale_bits, input_range),
            d,
            quantized,
        )
    round_circuit = RoundCircuit(
        n=request.n,
        f=request.f,
        m=request.m,
        d=d,
        max_int=fixed_point.max_int,
        num_inner_cols=request.inner_cols,
        rule=request.aggregation,
    )
    return (*paired_onnx_circuits(round_circuit, model, samples, request.scale_bits, input_range), d, quantized)


def create_task(
    protocol: Protocol, requester, request: CreateRequest, out: Path, secret: Path, post: bool = True
) -> TaskDescription | None:
    """Prepare (or reuse) the task folder ``out`` and the ``secret`` file, then, with ``post``,
    post the task; its posted description, or None when only prepared."""
    model = _read_model(request.model)
    x, y = load_evaluation(request.evaluation)
    samples = request.samples_per_proof or len(y)
    if len(y) % samples:
        raise InputError(f"--samples-per-proof {samples} must divide the evaluation set's {len(y)} samples")
    log.info("building the task's circuits (the round's and the model's accuracy circuit, paired)")
    round_circuit, accuracy_circuit, d, x_int = task_circuits(request, model, x, samples)
    terms = Terms(
        request.epochs, request.fee_per_epoch, round(request.target_accuracy * 10_000), len(y), request.verification
    )
    fixed_point = FixedPoint(scale_bits=request.scale_bits, clip=request.clip)
    description = describe_task(
        protocol, round_circuit, d, fixed_point, accuracy_circuit, model, accuracy_circuit.layout, terms
    )
    initial = _initial_parameters(accuracy_circuit)
    if (out / TASK_FILE).exists():
        _check_prepared(out, description)
    else:
        if secret.exists():
            raise InputError(f"{secret} exists but {out} does not: remove the stale secret or choose another --secret")
        # the set is committed to under the accuracy circuit, so its keys are needed now
        keep_evaluation_set(x_int, y, secret, prepare(accuracy_circuit, request.ceremony_srs))
        write_task_folder(out, description, model, initial)
    if not post:
        return None
    _, _, salt = kept_evaluation_set(secret)
    commitment = evaluation_commitment(salt, kept_set_commitments(secret))
    round_ = round_for(round_circuit, d, request.ceremony_srs)
    pair = approved_pair_for(protocol, round_, prepare(accuracy_circuit, request.ceremony_srs), len(y))
    if pair is None:
        raise InputError(
            f"no verifier pair for this task's shape is approved on protocol {protocol.tasks.address}: its governance "
            f"runs `stakelearn deploy --approve {out} --deployment DEPLOYMENT.json`; then run this command again"
        )
    params = task_params(description, initial, commitment, pair)
    task_id = post_task(protocol, requester, params)
    return record_posted(out, task_id, params)


def _read_model(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read the model ({error})") from None


def _initial_parameters(accuracy_circuit) -> np.ndarray:
    from stakelearn.circuits.onnx_accuracy import model_parameters

    return model_parameters(accuracy_circuit.model, accuracy_circuit.layout)


def _check_prepared(out: Path, description: TaskDescription) -> None:
    """A folder prepared before must describe this very task, not yet posted."""
    existing = read_task_folder(out).description
    if existing.task_id is not None:
        raise InputError(f"{out} describes task {existing.task_id}, already posted: choose another --out")
    if existing.spec() != description.spec() or existing.protocol != description.protocol:
        raise InputError(f"{out} was prepared for another task (other model, shape or protocol): choose another --out")
