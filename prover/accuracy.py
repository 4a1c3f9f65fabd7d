"""Prove and verify how many samples of an evaluation set a committed model gets right, with
either accuracy circuit: the digits one (prover.accuracy_circuit) or any ONNX classifier's
(prover.onnx_accuracy), told apart by the manifest's circuit kind.

An accuracy folder holds ``accuracy.json`` (the circuit, the SRS, the digests of the shipped
verifying files), the circuit's ``settings.json``, ``vk.key``, ``vka.bytes`` and ``kzg.srs`` (so
that anyone verifies it anywhere, see prover.verifying), per batch ``input.json`` and
``proof.json``, ``commitments.json`` (the model's KZG commitment, the first 64 bytes of the proof,
and the evaluation set's: each batch's x and labels, the next 128 bytes of its proof),
``public.json`` and ``summary.txt``, and for an ONNX model its ``model.onnx``; verifying checks
every one of them. The model commitment equals the round circuit's commitment of the same vector
when both circuits have the same logrows, which is how a task binds the accuracy proof to its
final global model on chain; the evaluation set is committed too (never public), and the
requester's task commits to those commitments (:func:`evaluation_set_commitments`), which the
requester computes before any proof exists, as a client does its update's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.circuits.accuracy import (
    check_evaluation_set,
    correct_count,
    range_errors,
    split_model_input,
)
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.files import atomic_dir, write_bytes_atomic, write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.accuracy_circuit import AccuracyCircuit, input_json
from stakelearn.prover.chunked import chunk_root, parts_commitment
from stakelearn.prover.circuit import (
    prepare,
)
from stakelearn.prover.commitments import COMMITMENT_BYTES, commit, proof_commitments
from stakelearn.prover.evm import verify_arguments, vka_digest
from stakelearn.prover.inputs import check_input_range
from stakelearn.prover.isolate import StepStats
from stakelearn.prover.onnx_accuracy import KIND as ONNX_KIND
from stakelearn.prover.onnx_accuracy import ONNX_FILE, onnx_circuit_of
from stakelearn.prover.verifying import SHIPPED, check_text, ship_verifying_files, shipped_circuit, unexpected_files

MANIFEST = "accuracy.json"
COMMITMENTS = "commitments.json"
PUBLIC = "public.json"
SUMMARY = "summary.txt"
BATCHES = "batches"  # batch-000/, batch-001/, ...: each one proof's input.json and proof.json
ACCURACY_FILES = {MANIFEST, BATCHES, COMMITMENTS, PUBLIC, SUMMARY, *SHIPPED}


def model_commitment(model: np.ndarray, prepared) -> str:
    """The model's commitment as the chain holds it (hex): the KZG commitment of the whole model,
    or, in chunks, the chunk root of its chunks' (prover.chunked.chunk_root)."""
    return model_parts_commitment(split_model_input(model, prepared.circuit.chunk), prepared)


def model_parts_commitment(parts: list, prepared) -> str:
    """The model commitment of the circuit's model inputs as they are (padding included)."""
    return parts_commitment(parts, prepared, chunked=prepared.circuit.chunk != 0).hex()


def proof_model_commitment(proof: bytes, circuit) -> str:
    """The model commitment a proof carries (hex): its first commitment, or the chunk root of its first K."""
    parts = proof_commitments(proof, circuit.model_parts)
    return (parts[0] if circuit.chunk == 0 else chunk_root(parts)).hex()


SET_INPUTS = 2  # the evaluation set's committed inputs per proof: x, then the labels


def proof_set_commitments(proof: bytes, circuit) -> list[bytes]:
    """The evaluation set's commitments a proof carries: its x's and its labels', right after
    the model's (AccuracyVerifier reads them there)."""
    return proof_commitments(proof, circuit.model_parts + SET_INPUTS)[circuit.model_parts :]


def evaluation_set_commitments(x: np.ndarray, labels: np.ndarray, prepared) -> list[bytes]:
    """The commitments every accuracy proof of the set will carry, in proof order (each batch's
    x, then its labels), computed before any proof from the prepared circuit's keys: what the
    requester's task commits to (:func:`evaluation_set_hash`). ``x`` holds the circuit's
    integers (the digits' grey levels, an ONNX model's round(x 2^t)), sample by sample."""
    circuit = prepared.circuit
    labels = np.asarray(labels, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64).reshape(len(labels), -1)
    commitments = []
    for b in range(batch_count(len(labels), circuit)):
        batch = slice(b * circuit.samples, (b + 1) * circuit.samples)
        for values in (x[batch].ravel(), labels[batch]):
            commitments.append(commit(values, prepared.vk, prepared.settings, prepared.srs.path))
    return commitments


def evaluation_set_hash(commitments: list[bytes]) -> bytes:
    """keccak256 of the set's commitments one after the other, as AccuracyVerifier hashes them
    from the proofs: the hash the requester's commitment covers (RewardManager.evaluationCommitment)."""
    if any(len(c) != COMMITMENT_BYTES for c in commitments):
        raise InputError("an evaluation set commitment is 64 bytes")
    return keccak(b"".join(commitments))


@dataclass(frozen=True)
class AccuracyOutcome:
    correct: int
    samples: int
    model_commitment: str  # hex
    set_commitments: list[str]  # hex, each batch's x then labels (evaluation_set_commitments)
    range_error: int = 0  # the set's values out of range: > 0 proves the set unprovable
    # An ONNX model's counts in floats, as its prover computed them (not proven): the float model
    # and the quantised one, so that the quantisation gap is visible beside the proven count.
    float_correct: int | None = None
    quantized_correct: int | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples

    @property
    def evaluation_hash(self) -> bytes:
        """keccak256 of the set's commitments (:func:`evaluation_set_hash`): the hash the
        requester's commitment covers (RewardManager.evaluationCommitment)."""
        return evaluation_set_hash([bytes.fromhex(c) for c in self.set_commitments])


def batch_folder(folder: Path, batch: int) -> Path:
    return folder / BATCHES / f"batch-{batch:03d}"


def batch_count(samples: int, circuit) -> int:
    """In how many proofs of ``circuit.samples`` samples an evaluation set of ``samples`` is proven."""
    if samples % circuit.samples:
        raise InputError(
            f"the circuit proves {circuit.samples} samples at a time; an evaluation set of {samples} is not "
            "a whole number of such batches"
        )
    return samples // circuit.samples


def prove_accuracy(
    model: np.ndarray,
    pixels: np.ndarray,
    labels: np.ndarray,
    circuit: AccuracyCircuit,
    out: Path,
    stats: dict[str, StepStats] | None = None,
) -> AccuracyOutcome:
    """Prove the correct count of ``model`` (the round's integer aggregate) on the set into ``out``,
    in batches of ``circuit.samples`` samples (one proof each, all over the same committed model)."""
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    pixels, labels = check_evaluation_set(pixels, labels)
    batches = batch_count(len(labels), circuit)
    model = np.asarray(model)
    length = circuit.classifier.length
    if model.shape != (length,):
        raise InputError(f"the model must be {length} integers, got shape {model.shape}")
    # The very data ezkl will read: a value outside the lookup table would hang the prover.
    batch_data = [input_json(model, *_batch(pixels, labels, circuit.samples, b), circuit.chunk) for b in range(batches)]
    for data in batch_data:
        check_input_range(data, circuit.input_bounds(), circuit.input_names)
    model = model.astype(np.int64)

    def check(b: int, outputs: dict) -> None:
        batch = _batch(pixels, labels, circuit.samples, b)
        expected = correct_count(model, *batch, circuit.classifier), range_errors(*batch)
        if (outputs["correct"], outputs["range_error"]) != expected:
            raise ProofError("the accuracy circuit's witness disagrees with the numpy reference; this is a bug")

    return prove_batches(circuit, batch_data, split_model_input(model, circuit.chunk), out, stats, check)


def prove_batches(
    circuit,
    batch_data: list[dict],
    model_parts: list,
    out: Path,
    stats: dict[str, StepStats] | None = None,
    check=None,
    shipped: dict[str, bytes] | None = None,
    reference: dict | None = None,
) -> AccuracyOutcome:
    """Prove each batch's input file with ``circuit`` into one accuracy folder at ``out``, for
    either accuracy circuit: ``check(b, outputs)`` sees each witness's named outputs first,
    ``shipped`` adds files a verifier needs (the ONNX model), ``reference`` adds the unproven
    float and quantised counts the prover measured, for people to compare."""
    stats = {} if stats is None else stats
    batches = len(batch_data)
    prepared = prepare(circuit, stats=stats)
    with atomic_dir(out) as tmp:
        for b, data in enumerate(batch_data):
            folder = batch_folder(tmp, b)
            folder.mkdir(parents=True)
            write_json_atomic(folder / steps.INPUT, data)
            witness = steps.gen_witness(folder / steps.INPUT, prepared.compiled, folder / steps.WITNESS)
            outputs = circuit.outputs([steps.felt_to_int(felt) for output in witness["outputs"] for felt in output])
            if check is not None:
                check(b, outputs)
            step = prepared.prove_in_child(
                f"proving accuracy, batch {b + 1}/{batches} of {circuit.samples} samples (logrows {prepared.logrows})",
                folder,
            )
            if "prove" in stats:  # the batches' seconds add up, their peaks do not (one at a time)
                step = replace(
                    step,
                    seconds=stats["prove"].seconds + step.seconds,
                    peak_mb=max(stats["prove"].peak_mb, step.peak_mb),
                )
            stats["prove"] = step
            (folder / steps.WITNESS).unlink()
        evaluation = [c.hex() for data in batch_data for c in _input_set_commitments(data, prepared)]
        write_json_atomic(
            tmp / COMMITMENTS, {"model": model_parts_commitment(model_parts, prepared), "evaluation": evaluation}
        )
        for name, content in (shipped or {}).items():
            write_bytes_atomic(tmp / name, content)
        manifest = {
            "kind": "accuracy",
            "circuit": circuit.description(),
            "circuit_digest": circuit.digest,
            "batches": batches,
            "logrows": prepared.logrows,
            "srs": {"insecure": prepared.srs.insecure, "label": prepared.srs.label, "sha256": prepared.srs.sha256()},
            "verifying": ship_verifying_files(prepared, tmp),
            "vka_digest": "0x" + vka_digest(prepared.vka).hex(),
            **({"reference": reference} if reference else {}),
        }
        write_json_atomic(tmp / MANIFEST, manifest)
        outcome = _outcome(
            [_proof_outputs(batch_folder(tmp, b), circuit) for b in range(batches)], tmp, circuit.samples
        )
        write_json_atomic(tmp / PUBLIC, public_json(outcome))
        write_bytes_atomic(tmp / SUMMARY, summary_text(outcome, manifest).encode())
        verify_accuracy(tmp)  # the folder as a third party gets it
    return outcome


def _batch(pixels: np.ndarray, labels: np.ndarray, size: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``b``: the set's samples ``b * size`` .. ``(b + 1) * size``, in order."""
    return pixels[b * size : (b + 1) * size], labels[b * size : (b + 1) * size]


def _proof_outputs(folder: Path, circuit) -> dict:
    proof = json.loads((folder / steps.PROOF).read_text())
    return circuit.outputs([steps.felt_to_int(felt) for felt in proof["instances"][0]])


def _input_set_commitments(data: dict, prepared) -> list[bytes]:
    """The set commitments of one batch's input file (x, then labels), as its proof carries them."""
    _, x, labels = prepared.circuit.decode_input(data)
    return [
        commit(np.asarray(v, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path) for v in (x, labels)
    ]


def _outcome(outputs: list[dict], folder: Path, samples: int) -> AccuracyOutcome:
    """The set's outcome from its batches' outputs: the counts added, the set's commitments in
    proof order, as AccuracyVerifier hashes them."""
    commitments = json.loads((folder / COMMITMENTS).read_text())
    reference = json.loads((folder / MANIFEST).read_text()).get("reference", {})
    return AccuracyOutcome(
        sum(o["correct"] for o in outputs),
        samples * len(outputs),
        commitments["model"],
        list(commitments["evaluation"]),
        sum(o["range_error"] for o in outputs),
        reference.get("float_correct"),
        reference.get("quantized_correct"),
    )


def accuracy_call_arguments(folder: Path, vka: Path) -> tuple[bytes, list[int], list[bytes]]:
    """verifyAccuracy's proof, instances and VKA words for an accuracy folder: its batches' proofs
    one after the other and their instances likewise (AccuracyVerifier's batch layout)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    parts = [verify_arguments(batch_folder(folder, b) / steps.PROOF, vka) for b in range(manifest["batches"])]
    return b"".join(p[0] for p in parts), [i for p in parts for i in p[1]], parts[0][2]


def is_accuracy_folder(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def circuit_of(manifest: dict, folder: Path | None = None):
    """The circuit an accuracy folder's manifest names: the digits circuit, or an ONNX model's
    (rebuilt from the ONNX file the folder ships, which must give the manifest's digest)."""
    fields = manifest["circuit"]
    if fields.get("ezkl") != steps.EZKL_VERSION:
        raise InputError(f"proven with ezkl {fields.get('ezkl')}, this is ezkl {steps.EZKL_VERSION}")
    if str(fields.get("circuit", "")).startswith(ONNX_KIND):
        return onnx_circuit_of(manifest, folder)
    names = ("samples", "model_bound", "num_inner_cols", "min_logrows", "chunk", "hidden", "scale")
    return AccuracyCircuit(**{k: fields[k] for k in names})


def verify_accuracy(folder: Path, ceremony_srs: Path | None = None) -> AccuracyOutcome:
    """Check an accuracy folder: every batch's proof, their commitments and outputs; ProofError if any fails."""
    if folder.is_dir():
        unexpected_files(
            folder, ACCURACY_FILES | {ONNX_FILE}, frozenset({BATCHES})
        )  # before reading: a link could point anywhere
    try:
        manifest, commitments = (json.loads((folder / name).read_text()) for name in (MANIFEST, COMMITMENTS))
    except FileNotFoundError as error:
        raise ArtifactError(f"{folder} is not an accuracy folder: {Path(error.filename).name} is missing") from error
    circuit = circuit_of(manifest, folder)
    prepared = shipped_circuit(folder, circuit, manifest, ceremony_srs)  # no rebuild, no set-up
    batches = [batch_folder(folder, b) for b in range(manifest["batches"])]
    names = {p.name for p in batches}
    unexpected_files(folder / BATCHES, names, frozenset(names))
    if len(list((folder / BATCHES).iterdir())) != len(batches):
        raise ProofError(f"{folder / BATCHES} must hold the {len(batches)} batches its manifest names")
    outputs = []
    for batch in batches:
        unexpected_files(batch, {steps.INPUT, steps.PROOF})
        steps.verify(batch / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)
        proof = json.loads((batch / steps.PROOF).read_text())
        if proof_model_commitment(bytes(proof["proof"]), circuit) != commitments["model"]:
            raise ProofError(f"{batch.name}: the proof's model commitment differs from the one claimed")
        if len(commitments.get("evaluation", [])) != SET_INPUTS * len(batches):
            raise ProofError(f"{folder / COMMITMENTS} must name {SET_INPUTS} set commitments per batch")
        b = len(outputs)
        claimed = commitments["evaluation"][SET_INPUTS * b : SET_INPUTS * (b + 1)]
        if [c.hex() for c in proof_set_commitments(bytes(proof["proof"]), circuit)] != claimed:
            raise ProofError(f"{batch.name}: the proof's evaluation set commitments differ from the ones claimed")
        outputs.append(_proof_outputs(batch, circuit))
        if (batch / steps.INPUT).exists():
            data = json.loads((batch / steps.INPUT).read_text())
            parts, _, _ = circuit.decode_input(data)
            if (
                len(parts) != circuit.model_parts
                or model_parts_commitment(parts, prepared) != commitments["model"]
                or [c.hex() for c in _input_set_commitments(data, prepared)] != claimed
            ):
                raise ProofError(
                    f"{batch / steps.INPUT} does not hold the model and set the proof is about: "
                    "it was edited after proving"
                )
    outcome = _outcome(outputs, folder, circuit.samples)
    check_text(folder / PUBLIC, json.dumps(public_json(outcome), indent=2) + "\n")
    check_text(folder / SUMMARY, summary_text(outcome, manifest))
    return outcome


def public_json(outcome: AccuracyOutcome) -> dict:
    return {
        "correct": outcome.correct,
        "samples": outcome.samples,
        "accuracy": outcome.accuracy,
        "range_error": outcome.range_error,
    }


def summary_text(outcome: AccuracyOutcome, manifest: dict) -> str:
    return (
        f"accuracy proof: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f}), "
        f"circuit {manifest['circuit_digest']}, logrows {manifest['logrows']}, {manifest['srs']['label']}\n"
        f"verifying key artifact (VKA) digest {manifest['vka_digest']}: a task's AccuracyVerifier pins it\n"
        f"model commitment: 0x{outcome.model_commitment}\n"
        f"evaluation set: commitments' hash 0x{outcome.evaluation_hash.hex()}"
        + (f"; {outcome.range_error} values OUT OF RANGE: the set is unprovable\n" if outcome.range_error else "\n")
    ) + (reference_line(outcome) + "\n" if outcome.float_correct is not None else "")


def reference_line(outcome: AccuracyOutcome) -> str:
    return (
        f"float model: {outcome.float_correct} of {outcome.samples} correct; quantised model (numpy): "
        f"{outcome.quantized_correct} of {outcome.samples} (computed by the prover, not proven)"
    )
