"""Any ONNX classifier's accuracy circuit (circuits.onnx_accuracy) as a prover ``Circuit``, and
its pairing with a task's round circuit.

The circuit is identified by the ONNX bytes' SHA-256, the parameter layout, the fixed-point scale
s and the aggregate's m, the samples per proof, the chunk, the parameters' bound, the evaluation
inputs' range and ezkl's version: its digest names its cache folder and a proof folder's
manifest. Its inputs are fed as field elements (ezkl reads each integer q as q / 2^t, t the
circuit's input scale), so the committed params are exactly the round's integer aggregate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import ezkl
import numpy as np
import onnx

from stakelearn.circuits import onnx_accuracy as surgery
from stakelearn.circuits.chunk import chunk_count
from stakelearn.circuits.krum import value_bound
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.prover import steps
from stakelearn.prover.circuit import description_digest, natural_logrows, prepare, source_digest
from stakelearn.prover.commitments import commit, felts

SOURCE_DIGEST = source_digest(surgery)
KIND = "onnx-accuracy"
ONNX_FILE = "model.onnx"  # an ONNX accuracy folder ships the requester's model: its digest is checked
# ezkl's default decomposition, 2 legs of base 2^14: every comparison and rescale of values
# within +-2^27 at the input scale (logits of a few thousand at t = 9 fit with room to spare).
DECOMP_BASE, DECOMP_LEGS = 2**14, 2


@dataclass(frozen=True)
class OnnxAccuracyCircuit:
    """The accuracy circuit of the ONNX classifier ``onnx`` (its bytes) for ``samples`` samples
    per proof, over a parameter vector in ``layout`` that is the sum of ``m`` updates quantized at
    2^-``scale_bits``, each within ``model_bound``; ``chunk`` C > 0 takes it in chunks of C as a
    round proven in chunks commits it. ``input_range`` (lo, hi) bounds the quantized inputs
    round(x 2^t) the circuit is calibrated for (and checks: ``range_error``)."""

    onnx_sha256: str
    layout: tuple
    samples: int
    scale_bits: int
    model_bound: int
    input_range: tuple[int, int]
    m: int = 1
    chunk: int = 0
    num_inner_cols: int = 2
    min_logrows: int = 0
    onnx: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def of(cls, model: bytes, **fields) -> OnnxAccuracyCircuit:
        """The circuit of the ONNX ``model`` bytes; ``layout`` defaults to the model's float
        initializers in graph order."""
        parsed = parse_model(model)
        layout = fields.pop("layout", None) or surgery.default_layout(parsed)
        return cls(hashlib.sha256(model).hexdigest(), surgery.check_layout(parsed, layout), onnx=model, **fields)

    def __post_init__(self) -> None:
        if hashlib.sha256(self.onnx).hexdigest() != self.onnx_sha256:
            raise InputError("the ONNX bytes are not the ones the circuit names (their SHA-256 differs)")
        object.__setattr__(self, "layout", tuple((n, tuple(s)) for n, s in self.layout))
        object.__setattr__(self, "input_range", tuple(int(v) for v in self.input_range))
        if self.samples < 1 or self.m < 1 or self.chunk < 0 or self.model_bound < 1:
            raise InputError("need samples >= 1, m >= 1, chunk >= 0 and model_bound >= 1")
        if not 0 <= self.scale_bits <= 15:
            raise InputError(f"scale_bits must be in 0..15, got {self.scale_bits}")
        lo, hi = self.input_range
        if lo > hi:
            raise InputError(f"input range must be lo <= hi, got {self.input_range}")
        self.graph  # noqa: B018 (refuses an unsupported model now, naming its ops)

    @cached_property
    def model(self) -> onnx.ModelProto:
        return parse_model(self.onnx)

    @cached_property
    def graph(self) -> onnx.ModelProto:
        return surgery.accuracy_graph(
            self.model, self.layout, self.samples, self.scale_bits, self.m, self.chunk, input_range=self.input_range
        )

    @property
    def input_scale(self) -> int:
        return surgery.input_scale(self.scale_bits, self.m)

    @property
    def d(self) -> int:
        return surgery.parameter_count(self.layout)

    @property
    def features(self) -> int:
        return math.prod(surgery.sample_shape(self.model))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return surgery.sample_shape(self.model)

    @property
    def classes(self) -> int:
        return surgery.class_count(surgery.with_batch(self.model, self.samples))

    @property
    def model_parts(self) -> int:
        return 1 if self.chunk == 0 else chunk_count(self.d, self.chunk)

    @property
    def bound(self) -> int:
        return self.model_bound

    @property
    def lookup_bound(self) -> int:
        return 0  # no lookup table: the inputs are not range-checked in the circuit (see the graph)

    @property
    def decomp_legs(self) -> int:
        return DECOMP_LEGS

    @property
    def label(self) -> str:
        return f"ONNX accuracy circuit d={self.d} N={self.samples}" + (f" C={self.chunk}" if self.chunk else "")

    @property
    def input_names(self) -> list[str]:
        return [*surgery.params_names(self.d, self.chunk), surgery.data_inputs(self.model)[0].name, "labels"]

    def input_bounds(self) -> list[tuple[int, int]]:
        """The model within its bound; the set's values within the comparisons' reach (the
        circuit flags those outside input_range and the classes, see circuits.onnx_accuracy)."""
        return [(-self.bound, self.bound)] * self.model_parts + [self.set_reach] * 2

    @property
    def set_reach(self) -> tuple[int, int]:
        """The set's values the circuit can prove in or out of range: a comparison decomposes a
        value minus a bound into DECOMP_LEGS signed digits of DECOMP_BASE."""
        reach = DECOMP_BASE**DECOMP_LEGS // 2 - max(abs(v) for v in (*self.input_range, self.classes)) - 1
        return (-reach, reach)

    @property
    def largest_input(self) -> int:
        return max(self.samples * self.features, self.d if self.chunk == 0 else self.chunk)

    def description(self) -> dict:
        return {
            "circuit": f"{KIND}-{SOURCE_DIGEST}",
            "ezkl": steps.EZKL_VERSION,
            "onnx_sha256": self.onnx_sha256,
            "layout": [[name, list(shape)] for name, shape in self.layout],
            "samples": self.samples,
            "scale_bits": self.scale_bits,
            "input_scale": self.input_scale,
            "m": self.m,
            "chunk": self.chunk,
            "model_bound": self.model_bound,
            "input_range": list(self.input_range),
            "num_inner_cols": self.num_inner_cols,
            "min_logrows": self.min_logrows,
            "decomp_base": DECOMP_BASE,
            "decomp_legs": DECOMP_LEGS,
        }

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def export(self, path):
        onnx.save(self.graph, str(path))
        return path

    def run_args(self) -> ezkl.PyRunArgs:
        args = ezkl.PyRunArgs()
        args.input_visibility = "polycommit"  # params, x and labels each committed (one visibility)
        args.output_visibility = "public"
        args.param_visibility = "fixed"
        args.input_scale = args.param_scale = self.input_scale
        args.num_inner_cols = self.num_inner_cols
        args.decomp_base, args.decomp_legs = DECOMP_BASE, DECOMP_LEGS
        args.disable_freivalds = True  # as every circuit here: see committed_integer_run_args
        args.ignore_range_check_inputs_outputs = True
        return args

    @property
    def calibration_scale(self) -> int:
        return self.input_scale

    def calibration_input(self) -> dict:
        """Parameters at the bound's extremes, inputs across their range: the worst case."""
        rng = np.random.default_rng(0)
        params = rng.choice([-self.bound, 0, self.bound], size=self.d)
        x = rng.integers(self.input_range[0], self.input_range[1] + 1, size=self.samples * self.features)
        return self.input_json(params, x, rng.integers(0, self.classes, size=self.samples))

    def input_json(self, params: np.ndarray, x_int: np.ndarray, labels: np.ndarray) -> dict:
        """ezkl's input file: every value a field element, read as q / 2^t by the circuit."""
        parts = surgery.parameter_parts(params, self.chunk)
        rows = [*parts, np.asarray(x_int).ravel(), np.asarray(labels).ravel()]
        return {"input_data": [felts(np.asarray(row, dtype=np.int64)) for row in rows]}

    def decode_input(self, data: dict) -> tuple[list, list, list]:
        """An input file's model parts, x and labels as integers."""
        *parts, x, labels = [[steps.felt_to_int(v) for v in row] for row in data["input_data"]]
        return parts, x, labels

    def outputs(self, values: list[int]) -> dict:
        return split_outputs(values, self.samples, self.features)

    def quantize_samples(self, x: np.ndarray) -> np.ndarray:
        return surgery.quantize_samples(x, self.input_scale)


def split_outputs(values: list[int], samples: int = 0, features: int = 0) -> dict:
    """Name the parts of a proof's public vector (the digits circuit's layout)."""
    return {"correct": values[0], "range_error": values[1], "range_tag": values[2]}


def onnx_circuit_of(manifest: dict, folder) -> OnnxAccuracyCircuit:
    """The circuit a folder's manifest names, rebuilt from the ONNX model the folder ships; its
    description must be the manifest's, field for field (so its digest too)."""
    fields = manifest["circuit"]
    path = None if folder is None else folder / ONNX_FILE
    if path is None or path.is_symlink() or not path.is_file():
        raise ArtifactError(f"an ONNX accuracy folder ships its model as {ONNX_FILE}; it is missing")
    names = ("samples", "scale_bits", "model_bound", "input_range", "m", "chunk", "num_inner_cols", "min_logrows")
    try:
        circuit = OnnxAccuracyCircuit.of(path.read_bytes(), layout=fields["layout"], **{k: fields[k] for k in names})
    except InputError as error:
        raise ProofError(f"{path} is not the model the proof is about: {error}") from None
    if circuit.description() != fields or circuit.digest != manifest.get("circuit_digest"):
        raise ProofError(f"{path} is not the model the proof is about (the circuit's digest differs)")
    return circuit


def parse_model(model: bytes) -> onnx.ModelProto:
    try:
        return onnx.load_from_string(model)
    except Exception as error:  # protobuf's DecodeError and friends
        raise InputError(f"not an ONNX model: {error}") from None


def check_same_commitment(round_prepared, accuracy_prepared, length: int) -> None:
    """A test vector must commit to one point under both keys (the binding the task relies on:
    it held in every circuit tried, but nothing in ezkl guarantees it)."""
    vector = np.random.default_rng(1).integers(
        -accuracy_prepared.circuit.bound, accuracy_prepared.circuit.bound + 1, length
    )
    ours = commit(vector, accuracy_prepared.vk, accuracy_prepared.settings, accuracy_prepared.srs.path)
    theirs = commit(vector, round_prepared.vk, round_prepared.settings, round_prepared.srs.path)
    if ours != theirs:
        raise ProofError(
            f"{accuracy_prepared.circuit.label} and {round_prepared.circuit.label} commit one vector to different "
            "points: the accuracy proof would not bind the round's aggregate"
        )


def _paired(round_circuit, accuracy: OnnxAccuracyCircuit, length: int) -> tuple:
    logrows = max(natural_logrows(round_circuit), natural_logrows(accuracy))
    pair = replace(round_circuit, min_logrows=logrows), replace(accuracy, min_logrows=logrows)
    check_same_commitment(prepare(pair[0]), prepare(pair[1]), length)
    return pair


def paired_onnx_circuits(round_circuit, model: bytes, samples: int, scale_bits: int, input_range, layout=None) -> tuple:
    """A task's round circuit and the ONNX model's accuracy circuit at one logrows (and SRS), so
    that the accuracy proof's params commitment is the aggregate commitment the round put on
    chain; checked on a test vector (ProofError if the two keys commit it differently)."""
    accuracy = OnnxAccuracyCircuit.of(
        model,
        layout=layout,
        samples=samples,
        scale_bits=scale_bits,
        model_bound=round_circuit.bound,
        input_range=input_range,
        m=round_circuit.params.weight,  # the aggregate is m (NNM: m (n - f)) times the mean
        num_inner_cols=round_circuit.num_inner_cols,
    )
    if accuracy.d != round_circuit.d:
        raise InputError(f"the model has {accuracy.d} parameters, the round aggregates {round_circuit.d}")
    return _paired(round_circuit, accuracy, round_circuit.d)


def paired_chunked_onnx_circuits(
    chunk_circuit, model: bytes, samples: int, scale_bits: int, input_range, layout=None
) -> tuple:
    """The same for a round proven in chunks: the accuracy circuit takes the params in the chunk
    circuit's chunks, so its chunk root commitment is the aggregate's the round recorded."""
    c = chunk_circuit
    accuracy = OnnxAccuracyCircuit.of(
        model,
        layout=layout,
        samples=samples,
        scale_bits=scale_bits,
        model_bound=value_bound(c.params, c.max_int),
        input_range=input_range,
        m=c.params.m,
        chunk=c.chunk,
        num_inner_cols=c.num_inner_cols,
    )
    return _paired(c, accuracy, c.chunk)
