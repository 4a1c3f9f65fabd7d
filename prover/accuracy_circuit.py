"""The digits accuracy circuit (circuits.accuracy) as a prover ``Circuit``, and its pairing with
a task's round circuit at one logrows so that the accuracy proof's model commitment is the
aggregate commitment the last round put on chain."""

from __future__ import annotations

import hashlib
import inspect
import math
from dataclasses import dataclass, replace
from pathlib import Path

import ezkl
import numpy as np

from stakelearn.circuits import accuracy as accuracy_module
from stakelearn.circuits.accuracy import (
    CLASSES,
    FEATURES,
    GREY_LEVELS,
    SOFTMAX,
    Classifier,
    input_names,
    model_parts,
    set_reach,
    split_model_input,
    split_outputs,
)
from stakelearn.circuits.krum import value_bound
from stakelearn.errors import InputError
from stakelearn.prover.circuit import (
    DECOMP_BASE,
    circuit_description,
    committed_integer_run_args,
    description_digest,
    natural_logrows,
)

SOURCE_DIGEST = hashlib.sha256(inspect.getsource(accuracy_module).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AccuracyCircuit:
    """The accuracy circuit for ``samples`` evaluation samples and models within ``model_bound``
    (the round circuit's value bound: ``m`` times the largest quantized parameter). ``chunk`` 0
    takes the model whole, as a one-proof round commits it; ``chunk`` C > 0 takes it in chunks
    of C, as a round proven in chunks of C commits it. ``hidden`` > 0 evaluates the MLP with that
    many hidden units, whose logits need the aggregate's ``scale`` m * 2^s (circuits.accuracy)."""

    samples: int
    model_bound: int
    num_inner_cols: int = 8
    min_logrows: int = 0
    chunk: int = 0
    hidden: int = 0
    scale: int = 1

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise InputError(f"an evaluation set needs at least one sample, got {self.samples}")
        if not GREY_LEVELS <= self.model_bound <= 2**20:
            raise InputError(f"model bound must be in {GREY_LEVELS}..2^20, got {self.model_bound}")
        if self.chunk < 0:
            raise InputError(f"chunk size must be >= 1 (or 0 for a whole model), got {self.chunk}")

    @property
    def classifier(self) -> Classifier:
        return Classifier(self.hidden, self.scale)

    # The interface both accuracy circuits share (and AccuracyVerifier's parameters).
    @property
    def features(self) -> int:
        return FEATURES

    @property
    def classes(self) -> int:
        return CLASSES

    @property
    def input_range(self) -> tuple[int, int]:
        return (0, GREY_LEVELS)

    def outputs(self, values: list[int]) -> dict:
        return split_outputs(values)

    def decode_input(self, data: dict) -> tuple[list, list, list]:
        *parts, pixels, labels = data["input_data"]
        return parts, pixels, labels

    @property
    def model_parts(self) -> int:
        return model_parts(self.chunk, self.classifier.length)

    @property
    def bound(self) -> int:
        return self.model_bound

    @property
    def lookup_bound(self) -> int:
        return self.model_bound

    @property
    def label(self) -> str:
        shape = (f" H={self.hidden}" if self.hidden else "") + (f" C={self.chunk}" if self.chunk else "")
        return f"accuracy circuit N={self.samples}{shape}"

    @property
    def input_names(self) -> list[str]:
        return input_names(self.chunk, self.classifier.length)

    def input_bounds(self) -> list[tuple[int, int]]:
        """Each input's range, for :func:`check_input_range`: the model within the bound (its
        lookup table is [-bound, bound]); the set's values within the comparisons' reach (the
        circuit flags those outside their ranges, see circuits.accuracy)."""
        return [(-self.bound, self.bound)] * self.model_parts + list(set_reach(self.bound))

    @property
    def largest_input(self) -> int:
        return max(self.samples * FEATURES, self.classifier.length if self.chunk == 0 else self.chunk)

    @property
    def decomp_legs(self) -> int:
        """Enough digits for the comparisons of logits (and the hidden units' ReLU): a first
        layer's output is within (64 * 16 + 16) * bound, an MLP's logit within hidden * that *
        bound + 16 * scale * bound."""
        pixel = max(abs(v) for v in set_reach(self.bound)[0])  # an out-of-range set is evaluated too
        largest = (FEATURES * pixel + GREY_LEVELS) * self.bound
        if self.hidden:
            largest = self.hidden * largest * self.bound + GREY_LEVELS * self.scale * self.bound
        bits = (2 * largest).bit_length() + 1
        return math.ceil(bits / math.log2(DECOMP_BASE))

    def description(self) -> dict:
        return circuit_description(f"accuracy-{SOURCE_DIGEST}", self)

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def export(self, path: Path) -> Path:
        return accuracy_module.export_onnx(self.samples, path, self.chunk, self.classifier)

    def run_args(self) -> ezkl.PyRunArgs:
        return committed_integer_run_args(self.num_inner_cols, self.decomp_legs)

    def calibration_input(self) -> dict:
        rng = np.random.default_rng(0)
        model = rng.choice([-self.bound, 0, self.bound], size=self.classifier.length)
        pixels = rng.integers(0, GREY_LEVELS + 1, size=(self.samples, FEATURES))
        labels = rng.integers(0, 10, size=self.samples)
        return input_json(model, pixels, labels, self.chunk)


def input_json(model: np.ndarray, pixels: np.ndarray, labels: np.ndarray, chunk: int = 0) -> dict:
    parts = [part.tolist() for part in split_model_input(model, chunk)]
    return {"input_data": [*parts, np.asarray(pixels).ravel().tolist(), np.asarray(labels).tolist()]}


def paired_circuits(round_circuit, samples: int, classifier: Classifier = SOFTMAX) -> tuple:
    """A task's round circuit and accuracy circuit (``samples`` per proof) at one shared logrows,
    so that the accuracy proof's model commitment equals the aggregate commitment the last round
    put on chain."""
    fields = {"hidden": classifier.hidden, "scale": classifier.scale}
    accuracy = AccuracyCircuit(
        samples, model_bound=round_circuit.bound, num_inner_cols=round_circuit.num_inner_cols, **fields
    )
    logrows = max(natural_logrows(round_circuit), natural_logrows(accuracy))
    return replace(round_circuit, min_logrows=logrows), replace(accuracy, min_logrows=logrows)


def paired_chunked_circuits(chunk_circuit, samples: int, classifier: Classifier = SOFTMAX) -> tuple:
    """The same for a round proven in chunks: the chunk circuit and an accuracy circuit taking the
    model in the same chunks, at one shared logrows, so that the accuracy proof's model commitment
    (the chunk root of its K model commitments) equals the aggregate's the last round put on chain."""
    c = chunk_circuit
    bound = value_bound(c.params, c.max_int)
    fields = {"chunk": c.chunk, "hidden": classifier.hidden, "scale": classifier.scale}
    accuracy = AccuracyCircuit(samples, model_bound=bound, num_inner_cols=c.num_inner_cols, **fields)
    logrows = max(natural_logrows(c), natural_logrows(accuracy))
    return replace(c, min_logrows=logrows), replace(accuracy, min_logrows=logrows)
