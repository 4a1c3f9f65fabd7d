"""Prove an ONNX classifier's accuracy into an accuracy folder (prover.accuracy's format, which
``verify_accuracy`` checks for either circuit), with the unproven float and quantised counts
beside the proven one so that the quantisation gap is visible."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stakelearn.circuits import onnx_accuracy as surgery
from stakelearn.errors import InputError, ProofError
from stakelearn.prover.accuracy import AccuracyOutcome, batch_count, prove_batches
from stakelearn.prover.isolate import StepStats
from stakelearn.prover.onnx_accuracy import ONNX_FILE, OnnxAccuracyCircuit

logger = logging.getLogger(__name__)


def quantized_parameters(parameters: np.ndarray, scale_bits: int) -> np.ndarray:
    """A float parameter vector at the fixed point 2^-s (one model: m = 1), as integers."""
    return np.rint(np.asarray(parameters, dtype=np.float64) * 2.0**scale_bits).astype(np.int64)


def check_evaluation(circuit: OnnxAccuracyCircuit, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The set as floats [N, *sample shape] and class integers, or InputError naming what is wrong."""
    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels)
    if x.shape[1:] != circuit.sample_shape or len(x) != len(labels) or len(labels) == 0 or labels.ndim != 1:
        raise InputError(
            f"an evaluation set is x of shape [N, {', '.join(map(str, circuit.sample_shape))}] and N labels, "
            f"got {x.shape} and {labels.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError("the evaluation inputs hold NaN or infinite values")
    if np.any(labels != np.round(labels)):  # their range is the circuit's to check (range_error)
        raise InputError("labels must be integers")
    return x, labels.astype(np.int64)


def default_input_range(x: np.ndarray, scale_bits: int, m: int = 1) -> tuple[int, int]:
    """The quantized inputs' range over the set: what the circuit is calibrated for."""
    x_int = surgery.quantize_samples(x, surgery.input_scale(scale_bits, m))
    return int(x_int.min()), int(x_int.max())


def prove_onnx_accuracy(
    params: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    circuit: OnnxAccuracyCircuit,
    out: Path,
    stats: dict[str, StepStats] | None = None,
    float_parameters: np.ndarray | None = None,
) -> AccuracyOutcome:
    """Prove how many samples of (``x``, ``labels``) the model with the committed integer vector
    ``params`` (the sum of m updates at 2^-s) gets right, into ``out``; ``float_parameters`` are
    the float model's (default: the ONNX model's own), for the reference count only."""
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    x, labels = check_evaluation(circuit, x, labels)
    batches = batch_count(len(labels), circuit)
    params = np.asarray(params)
    if params.shape != (circuit.d,) or np.any(params != np.round(params)):
        raise InputError(f"the parameters must be {circuit.d} integers, got shape {params.shape}")
    params = params.astype(np.int64)
    if np.abs(params).max() > circuit.bound:
        raise InputError(f"a parameter is beyond the circuit's bound {circuit.bound}: {int(np.abs(params).max())}")
    x_int = circuit.quantize_samples(x)
    lo, hi = circuit.input_range
    if x_int.min() < lo or x_int.max() > hi:  # proven all the same: range_error > 0 says so
        logger.warning(
            "the quantized inputs span %d..%d, beyond the circuit's input range %d..%d: the proof will show "
            "the set out of range",
            x_int.min(),
            x_int.max(),
            lo,
            hi,
        )
    size, t = circuit.samples, circuit.input_scale
    classes = (labels >= 0) & (labels < circuit.classes)
    parts = surgery.parameter_parts(params, circuit.chunk)
    batch = [slice(b * size, (b + 1) * size) for b in range(batches)]
    batch_data = [circuit.input_json(params, x_int[s], labels[s]) for s in batch]
    if float_parameters is None:
        float_parameters = surgery.model_parameters(circuit.model, circuit.layout)
    quantized = [surgery.reference_count(circuit.graph, parts, x_int[s], labels[s], t) for s in batch]
    reference = {
        "float_correct": surgery.float_count(
            circuit.model, x, np.where(classes, labels, 0), float_parameters, circuit.layout
        ),
        "quantized_correct": sum(quantized),
        "note": "computed by the prover in floats (onnx reference evaluator), not proven",
    }

    def check(b: int, outputs: dict) -> None:
        bad = int(((x_int[batch[b]] < lo) | (x_int[batch[b]] > hi)).sum() + (~classes[batch[b]]).sum())
        if outputs["range_error"] != bad:
            raise ProofError("the circuit's range check disagrees with the set's; this is a bug")
        if outputs["correct"] != quantized[b]:  # rescaling rounds apart from floats only at near-ties
            logger.warning(
                "batch %d: the circuit counts %d, the quantised model in floats %d", b, outputs["correct"], quantized[b]
            )

    logger.info(
        "float model: %d of %d correct; quantised model (numpy): %d",
        reference["float_correct"],
        len(labels),
        reference["quantized_correct"],
    )
    return prove_batches(
        circuit, batch_data, parts, out, stats, check, shipped={ONNX_FILE: circuit.onnx}, reference=reference
    )
