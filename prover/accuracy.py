"""Prove and verify how many samples of an evaluation set a committed model gets right.

An accuracy folder holds ``accuracy.json`` (the circuit, the SRS, the digests of the shipped
verifying files), the circuit's ``settings.json``, ``vk.key``, ``vka.bytes`` and ``kzg.srs`` (so
that anyone verifies it anywhere, see prover.verifying), ``input.json``, ``proof.json``,
``commitments.json`` (the model's KZG commitment, the first 64 bytes of the proof),
``public.json`` and ``summary.txt``; verifying checks every one of them. The model commitment equals the round circuit's commitment
of the same vector when both circuits have the same logrows, which is how a task binds the
accuracy proof to its final global model on chain; the evaluation set is public in the proof.
"""

from __future__ import annotations

import hashlib
import inspect
import json
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
    MODEL_LENGTH,
    check_evaluation_set,
    correct_count,
    input_names,
    model_parts,
    split_model_input,
    split_outputs,
)
from stakelearn.circuits.krum import value_bound
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.files import atomic_dir, write_bytes_atomic, write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.chunked import chained_commitment
from stakelearn.prover.circuit import (
    DECOMP_BASE,
    circuit_description,
    committed_integer_run_args,
    description_digest,
    natural_logrows,
    prepare,
)
from stakelearn.prover.commitments import commit, proof_commitments
from stakelearn.prover.evm import vka_digest
from stakelearn.prover.inputs import check_input_range
from stakelearn.prover.isolate import StepStats
from stakelearn.prover.verifying import SHIPPED, check_text, ship_verifying_files, shipped_circuit, unexpected_files

SOURCE_DIGEST = hashlib.sha256(inspect.getsource(accuracy_module).encode()).hexdigest()[:16]
MANIFEST = "accuracy.json"
COMMITMENTS = "commitments.json"
PUBLIC = "public.json"
SUMMARY = "summary.txt"
ACCURACY_FILES = {MANIFEST, steps.INPUT, steps.PROOF, COMMITMENTS, PUBLIC, SUMMARY, *SHIPPED}


@dataclass(frozen=True)
class AccuracyCircuit:
    """The accuracy circuit for ``samples`` evaluation samples and models within ``model_bound``
    (the round circuit's value bound: ``m`` times the largest quantized parameter). ``chunk`` 0
    takes the model whole, as a one-proof round commits it; ``chunk`` C > 0 takes it in chunks
    of C, as a round proven in chunks of C commits it."""

    samples: int
    model_bound: int
    num_inner_cols: int = 8
    min_logrows: int = 0
    chunk: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise InputError(f"an evaluation set needs at least one sample, got {self.samples}")
        if not GREY_LEVELS <= self.model_bound <= 2**20:
            raise InputError(f"model bound must be in {GREY_LEVELS}..2^20, got {self.model_bound}")
        if self.chunk < 0:
            raise InputError(f"chunk size must be >= 1 (or 0 for a whole model), got {self.chunk}")

    @property
    def model_parts(self) -> int:
        return model_parts(self.chunk)

    @property
    def bound(self) -> int:
        return self.model_bound

    @property
    def lookup_bound(self) -> int:
        return self.model_bound

    @property
    def label(self) -> str:
        return f"accuracy circuit N={self.samples}" + (f" C={self.chunk}" if self.chunk else "")

    @property
    def input_names(self) -> list[str]:
        return input_names(self.chunk)

    def input_bounds(self) -> list[tuple[int, int]]:
        """Each input's range, for :func:`check_input_range`: the model within the bound (the
        lookup table all inputs share is [-bound, bound]), grey levels and classes."""
        return [(-self.bound, self.bound)] * self.model_parts + [(0, GREY_LEVELS), (0, CLASSES - 1)]

    @property
    def largest_input(self) -> int:
        return max(self.samples * FEATURES, MODEL_LENGTH if self.chunk == 0 else self.chunk)

    @property
    def decomp_legs(self) -> int:
        """Enough digits for the comparisons of logits: |logit| <= (64 * 16 + 16) * bound."""
        bits = (2 * (FEATURES * GREY_LEVELS + GREY_LEVELS) * self.bound).bit_length() + 1
        return math.ceil(bits / math.log2(DECOMP_BASE))

    def description(self) -> dict:
        return circuit_description(f"accuracy-{SOURCE_DIGEST}", self)

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def export(self, path: Path) -> Path:
        return accuracy_module.export_onnx(self.samples, path, self.chunk)

    def run_args(self) -> ezkl.PyRunArgs:
        return committed_integer_run_args(self.num_inner_cols, self.decomp_legs)

    def calibration_input(self) -> dict:
        rng = np.random.default_rng(0)
        model = rng.choice([-self.bound, 0, self.bound], size=MODEL_LENGTH)
        pixels = rng.integers(0, GREY_LEVELS + 1, size=(self.samples, FEATURES))
        labels = rng.integers(0, 10, size=self.samples)
        return input_json(model, pixels, labels, self.chunk)


def input_json(model: np.ndarray, pixels: np.ndarray, labels: np.ndarray, chunk: int = 0) -> dict:
    parts = [part.tolist() for part in split_model_input(model, chunk)]
    return {"input_data": [*parts, np.asarray(pixels).ravel().tolist(), np.asarray(labels).tolist()]}


def model_commitment(model: np.ndarray, prepared) -> str:
    """The model's commitment as the chain holds it (hex): the KZG commitment of the whole model,
    or, in chunks, the chained commitment of its chunks' (prover.chunked.chained_commitment)."""
    parts = [
        commit(part, prepared.vk, prepared.settings, prepared.srs.path)
        for part in split_model_input(model, prepared.circuit.chunk)
    ]
    return (parts[0] if prepared.circuit.chunk == 0 else chained_commitment(parts)).hex()


def proof_model_commitment(proof: bytes, circuit: AccuracyCircuit) -> str:
    """The model commitment a proof carries (hex): its first commitment, or the chain of its first K."""
    parts = proof_commitments(proof, circuit.model_parts)
    return (parts[0] if circuit.chunk == 0 else chained_commitment(parts)).hex()


def evaluation_values(pixels: np.ndarray, labels: np.ndarray) -> list[int]:
    """The evaluation set as the proof's public values list it: pixels row by row, then labels."""
    pixels, labels = check_evaluation_set(pixels, labels)
    return [*pixels.ravel().tolist(), *labels.tolist()]


@dataclass(frozen=True)
class AccuracyOutcome:
    correct: int
    samples: int
    model_commitment: str  # hex
    evaluation: list[int]  # the public evaluation set, as evaluation_values lists it

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples


def prove_accuracy(
    model: np.ndarray,
    pixels: np.ndarray,
    labels: np.ndarray,
    circuit: AccuracyCircuit,
    out: Path,
    stats: dict[str, StepStats] | None = None,
) -> AccuracyOutcome:
    """Prove the correct count of ``model`` (the round's integer aggregate) on the set into ``out``."""
    stats = {} if stats is None else stats
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    pixels, labels = check_evaluation_set(pixels, labels)
    model = np.asarray(model)
    if len(labels) != circuit.samples:
        raise InputError(f"the circuit takes {circuit.samples} samples, the set has {len(labels)}")
    if model.shape != (MODEL_LENGTH,):
        raise InputError(f"the model must be {MODEL_LENGTH} integers, got shape {model.shape}")
    # The very data ezkl will read: a value outside the lookup table would hang the prover.
    data = input_json(model, pixels, labels, circuit.chunk)
    check_input_range(data, circuit.input_bounds(), circuit.input_names)
    model = model.astype(np.int64)
    prepared = prepare(circuit, stats=stats)
    expected = correct_count(model, pixels, labels)
    with atomic_dir(out) as tmp:
        write_json_atomic(tmp / steps.INPUT, data)
        witness = steps.gen_witness(tmp / steps.INPUT, prepared.compiled, tmp / steps.WITNESS)
        outputs = split_outputs([steps.felt_to_int(felt) for felt in witness["outputs"][0]], circuit.samples)
        if outputs["correct"] != expected or outputs["label_error"] != 0:
            raise ProofError("the accuracy circuit's witness disagrees with the numpy reference; this is a bug")
        stats["prove"] = prepared.prove_in_child(
            f"proving accuracy on {circuit.samples} samples (logrows {prepared.logrows})", tmp
        )
        (tmp / steps.WITNESS).unlink()
        write_json_atomic(tmp / COMMITMENTS, {"model": model_commitment(model, prepared)})
        manifest = {
            "kind": "accuracy",
            "circuit": circuit.description(),
            "circuit_digest": circuit.digest,
            "logrows": prepared.logrows,
            "srs": {"insecure": prepared.srs.insecure, "label": prepared.srs.label, "sha256": prepared.srs.sha256()},
            "verifying": ship_verifying_files(prepared, tmp),
            "vka_digest": "0x" + vka_digest(prepared.vka).hex(),
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        proof = json.loads((tmp / steps.PROOF).read_text())
        outputs = split_outputs([steps.felt_to_int(felt) for felt in proof["instances"][0]], circuit.samples)
        outcome = AccuracyOutcome(
            outputs["correct"],
            circuit.samples,
            json.loads((tmp / COMMITMENTS).read_text())["model"],
            outputs["pixels"] + outputs["labels"],
        )
        write_json_atomic(tmp / PUBLIC, public_json(outcome))
        write_bytes_atomic(tmp / SUMMARY, summary_text(outcome, manifest).encode())
        verify_accuracy(tmp)  # the folder as a third party gets it
    return outcome


def is_accuracy_folder(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def circuit_of(manifest: dict) -> AccuracyCircuit:
    fields = manifest["circuit"]
    if fields.get("ezkl") != steps.EZKL_VERSION:
        raise InputError(f"proven with ezkl {fields.get('ezkl')}, this is ezkl {steps.EZKL_VERSION}")
    names = ("samples", "model_bound", "num_inner_cols", "min_logrows", "chunk")
    return AccuracyCircuit(**{k: fields[k] for k in names})


def verify_accuracy(folder: Path, ceremony_srs: Path | None = None) -> AccuracyOutcome:
    """Check an accuracy folder: the proof, its commitments and its outputs; ProofError if any fails."""
    if folder.is_dir():
        unexpected_files(folder, ACCURACY_FILES)  # before reading: a link could point anywhere
    try:
        manifest, proof, commitments = (
            json.loads((folder / name).read_text()) for name in (MANIFEST, steps.PROOF, COMMITMENTS)
        )
    except FileNotFoundError as error:
        raise ArtifactError(f"{folder} is not an accuracy folder: {Path(error.filename).name} is missing") from error
    circuit = circuit_of(manifest)
    prepared = shipped_circuit(folder, circuit, manifest, ceremony_srs)  # no rebuild, no set-up
    steps.verify(folder / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)
    if proof_model_commitment(bytes(proof["proof"]), circuit) != commitments["model"]:
        raise ProofError("the proof's model commitment differs from the one claimed")
    outputs = split_outputs([steps.felt_to_int(felt) for felt in proof["instances"][0]], circuit.samples)
    if outputs["label_error"] != 0:
        raise ProofError("the evaluation set has labels outside 0..9 (label_error != 0)")
    outcome = AccuracyOutcome(
        outputs["correct"], circuit.samples, commitments["model"], outputs["pixels"] + outputs["labels"]
    )
    if (folder / steps.INPUT).exists():
        *parts, pixels, labels = json.loads((folder / steps.INPUT).read_text())["input_data"]
        if (
            len(parts) != circuit.model_parts
            or _parts_commitment(parts, prepared) != commitments["model"]
            or [*pixels, *labels] != outcome.evaluation
        ):
            raise ProofError(
                f"{folder / steps.INPUT} does not hold the model and set the proof is about: "
                "it was edited after proving"
            )
    check_text(folder / PUBLIC, json.dumps(public_json(outcome), indent=2) + "\n")
    check_text(folder / SUMMARY, summary_text(outcome, manifest))
    return outcome


def _parts_commitment(parts: list[list[int]], prepared) -> str:
    """The model commitment of input.json's model inputs, as they are (padding included)."""
    commitments = [
        commit(np.asarray(part, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path) for part in parts
    ]
    return (commitments[0] if prepared.circuit.chunk == 0 else chained_commitment(commitments)).hex()


def public_json(outcome: AccuracyOutcome) -> dict:
    return {"correct": outcome.correct, "samples": outcome.samples, "accuracy": outcome.accuracy}


def summary_text(outcome: AccuracyOutcome, manifest: dict) -> str:
    return (
        f"accuracy proof: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f}), "
        f"circuit {manifest['circuit_digest']}, logrows {manifest['logrows']}, {manifest['srs']['label']}\n"
        f"verifying key artifact (VKA) digest {manifest['vka_digest']}: a task's AccuracyVerifier pins it\n"
        f"model commitment: 0x{outcome.model_commitment}\n"
    )


def paired_circuits(round_circuit, samples: int) -> tuple:
    """A task's round circuit and accuracy circuit at one shared logrows, so that the accuracy
    proof's model commitment equals the aggregate commitment the last round put on chain."""
    accuracy = AccuracyCircuit(samples, model_bound=round_circuit.bound, num_inner_cols=round_circuit.num_inner_cols)
    logrows = max(natural_logrows(round_circuit), natural_logrows(accuracy))
    return replace(round_circuit, min_logrows=logrows), replace(accuracy, min_logrows=logrows)


def paired_chunked_circuits(chunk_circuit, samples: int) -> tuple:
    """The same for a round proven in chunks: the chunk circuit and an accuracy circuit taking the
    model in the same chunks, at one shared logrows, so that the accuracy proof's chained model
    commitment equals the aggregate's chained commitment the last round put on chain."""
    c = chunk_circuit
    accuracy = AccuracyCircuit(
        samples, model_bound=value_bound(c.params, c.max_int), num_inner_cols=c.num_inner_cols, chunk=c.chunk
    )
    logrows = max(natural_logrows(c), natural_logrows(accuracy))
    return replace(c, min_logrows=logrows), replace(accuracy, min_logrows=logrows)
