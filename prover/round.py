"""Prove and verify one Multi-Krum round: files in, a self-describing round folder out.

A round folder holds:
    round.json        the circuit (shape, layout, ezkl version) and the SRS it was proven with
    input.json        the quantized updates with their slot tags, and the claimed sum (ezkl's input file)
    proof.json        ezkl's proof, with its public instances
    commitments.json  the commitment of every update and of the aggregate (the claimed sum)
    public.json       the public outputs by name: scores, mask, selected and absent clients, check_error
    summary.txt       the same for people
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import krum_round, tagged_inputs
from stakelearn.circuits.krum_module import split_outputs
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.prover import steps
from stakelearn.prover.circuit import PreparedCircuit, RoundCircuit, input_json, prepare
from stakelearn.prover.commitments import commit, proof_commitments
from stakelearn.prover.inputs import check_input_range
from stakelearn.files import atomic_dir, write_bytes_atomic, write_json_atomic
from stakelearn.prover.isolate import StepStats, run_isolated

MANIFEST = "round.json"
COMMITMENTS = "commitments.json"
PUBLIC = "public.json"
SUMMARY = "summary.txt"


@dataclass(frozen=True)
class RoundOutcome:
    """What a verified round claims, read from its proof's public instances."""

    scores: list[int]
    mask: list[int]
    check_error: int
    update_commitments: list[str]
    aggregate_commitment: str
    absent: list[int]  # slots holding the absent commitment (the zero vector)

    @property
    def selected(self) -> list[int]:
        return [i for i, bit in enumerate(self.mask) if bit == 1]


def check_updates(updates: np.ndarray, circuit: RoundCircuit, absent: np.ndarray | None = None) -> np.ndarray:
    x = np.asarray(updates)
    if x.shape != (circuit.n, circuit.d):
        raise InputError(f"expected {circuit.n} updates of length {circuit.d}, got shape {x.shape}")
    too_big = np.flatnonzero(np.abs(x).max(axis=1) > circuit.max_int)
    if too_big.size:
        raise InputError(
            f"update {too_big[0]} has values beyond +-{circuit.max_int}; quantize it with the task's fixed point"
        )
    if absent is not None and np.count_nonzero(absent) > circuit.f:
        raise InputError(f"{np.count_nonzero(absent)} clients are absent; a round tolerates at most f={circuit.f}")
    return x.astype(np.int64)


def absent_commitment(prepared: PreparedCircuit) -> bytes:
    """The commitment an absent client's slot holds: that of the all-zero vector (tag 0)."""
    return commit(np.zeros(prepared.circuit.d + 1, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path)


def public_outputs(felts: list[str], n: int) -> dict:
    """The circuit's output vector (field elements, as ezkl writes them) by name."""
    return split_outputs([steps.felt_to_int(felt) for felt in felts], n)


def prove_round(
    updates: np.ndarray,
    circuit: RoundCircuit,
    out: Path,
    ceremony_srs: Path | None = None,
    sources: list[str] | None = None,
    stats: dict[str, StepStats] | None = None,
    absent: np.ndarray | None = None,
) -> RoundOutcome:
    """Prove the round over ``updates`` (an ``[n, d]`` integer matrix; the ``absent`` slots, a
    boolean mask, are left out) into the new folder ``out``. Steps that ran are timed into ``stats``."""
    stats = {} if stats is None else stats
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    x = check_updates(updates, circuit, absent)
    prepared = prepare(circuit, ceremony_srs, stats)
    reference = krum_round(x, circuit.params, absent, circuit.absent_distance)
    inputs = tagged_inputs(x, absent)
    data = input_json(inputs, reference.total)
    check_input_range(data, circuit.input_bounds(), circuit.input_names)  # an unprovable input hangs ezkl
    with atomic_dir(out) as tmp:
        write_json_atomic(tmp / steps.INPUT, data)
        witness = steps.gen_witness(tmp / steps.INPUT, prepared.compiled, tmp / steps.WITNESS)
        outputs = public_outputs(witness["outputs"][0], circuit.n)
        if outputs["scores"] != reference.scores.tolist() or outputs["mask"] != reference.mask.astype(int).tolist():
            raise ProofError("the circuit's witness disagrees with the numpy reference; this is a bug")
        _, stats["prove"] = run_isolated(
            f"proving round n={circuit.n} d={circuit.d} (logrows {prepared.logrows})",
            steps.prove, tmp / steps.WITNESS, prepared.compiled, prepared.pk, tmp / steps.PROOF, prepared.srs.path,
        )
        (tmp / steps.WITNESS).unlink()
        commitments = [
            commit(row, prepared.vk, prepared.settings, prepared.srs.path).hex() for row in [*inputs, reference.total]
        ]
        write_json_atomic(tmp / MANIFEST, manifest(prepared, sources))
        write_json_atomic(tmp / COMMITMENTS, {"updates": commitments[:-1], "aggregate": commitments[-1]})
        outcome = verify_round(tmp, prepared.srs.path if not prepared.srs.insecure else None)
        write_json_atomic(tmp / PUBLIC, public_json(outcome))
        write_bytes_atomic(tmp / SUMMARY, summary_text(outcome, prepared, sources).encode())
    return outcome


def manifest(prepared: PreparedCircuit, sources: list[str] | None) -> dict:
    return {
        "circuit": prepared.circuit.description(),
        "circuit_digest": prepared.circuit.digest,
        "logrows": prepared.logrows,
        "srs": {
            "insecure": prepared.srs.insecure,
            "label": prepared.srs.label,
            "sha256": prepared.srs.sha256(),
        },
        "sources": sources or [],
    }


def load_round(folder: Path) -> tuple[dict, dict, dict]:
    """The manifest, proof and commitments of a round folder, or ArtifactError."""
    try:
        return tuple(json.loads((folder / name).read_text()) for name in (MANIFEST, steps.PROOF, COMMITMENTS))
    except FileNotFoundError as error:
        raise ArtifactError(f"{folder} is not a round folder: {Path(error.filename).name} is missing") from error
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{folder}: unreadable JSON ({error.msg})") from error


def circuit_of(manifest_data: dict) -> RoundCircuit:
    fields = manifest_data["circuit"]
    if fields.get("ezkl") != steps.EZKL_VERSION:
        raise InputError(f"round was proven with ezkl {fields.get('ezkl')}, this is ezkl {steps.EZKL_VERSION}")
    return RoundCircuit(**{k: fields[k] for k in ("n", "f", "m", "d", "max_int", "num_inner_cols")},
                        min_logrows=fields.get("min_logrows", 0))


def verify_round(folder: Path, ceremony_srs: Path | None = None) -> RoundOutcome:
    """Check a round folder: the proof against this machine's keys for the circuit it names,
    the commitments against the proof, and the public outputs. Raises ProofError if any fails."""
    manifest_data, proof, commitments = load_round(folder)
    circuit = circuit_of(manifest_data)
    prepared = prepare(circuit, ceremony_srs)
    if prepared.srs.sha256() != manifest_data["srs"]["sha256"]:
        raise ProofError(
            "the round was proven with another SRS than this machine's; pass the same SRS file with --srs"
        )
    steps.verify(folder / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)
    claimed = [*commitments["updates"], commitments["aggregate"]]
    if len(claimed) != circuit.n + 1:
        raise ProofError(f"expected {circuit.n} update commitments and one aggregate, got {len(claimed) - 1}")
    in_proof = [c.hex() for c in proof_commitments(bytes(proof["proof"]), circuit.n + 1)]
    for i, (want, got) in enumerate(zip(claimed, in_proof)):
        if want != got:
            who = f"update {i}" if i < circuit.n else "the aggregate"
            raise ProofError(f"the proof's commitment of {who} differs from the signed commitment")
    outputs = public_outputs(proof["instances"][0], circuit.n)
    if outputs["check_error"] != 0:
        raise ProofError("the claimed aggregate is not the sum of the selected updates, or a slot tag is wrong "
                         "(check_error != 0)")
    if sorted(set(outputs["mask"])) not in ([1], [0, 1]) or sum(outputs["mask"]) != circuit.m:
        raise ProofError(f"the selection mask does not select exactly m={circuit.m} clients")
    vacant = absent_commitment(prepared).hex()
    return RoundOutcome(
        scores=outputs["scores"],
        mask=outputs["mask"],
        check_error=outputs["check_error"],
        update_commitments=commitments["updates"],
        aggregate_commitment=commitments["aggregate"],
        absent=[i for i, c in enumerate(commitments["updates"]) if c == vacant],
    )


def public_json(outcome: RoundOutcome) -> dict:
    return {
        "scores": outcome.scores,
        "mask": outcome.mask,
        "selected": outcome.selected,
        "absent": outcome.absent,
        "check_error": outcome.check_error,
    }


def summary_text(outcome: RoundOutcome, prepared: PreparedCircuit, sources: list[str] | None) -> str:
    c = prepared.circuit
    names = sources or [f"update {i}" for i in range(c.n)]
    lines = [
        f"Multi-Krum round: n={c.n} clients, f={c.f} tolerated, m={c.m} selected, d={c.d} parameters",
        f"circuit {c.digest}, logrows {prepared.logrows}, {prepared.srs.label}",
        "",
        f"{'client':>6}  {'score':>14}  {'selected':>8}  commitment  source",
    ]
    for i, (score, bit) in enumerate(zip(outcome.scores, outcome.mask)):
        status = "absent" if i in outcome.absent else "yes" if bit else "left out"
        lines.append(f"{i:>6}  {score:>14}  {status:>8}  {outcome.update_commitments[i][:10]}  {names[i]}")
    lines += ["", f"selected: {outcome.selected}", f"aggregate (sum of selected) commitment: 0x{outcome.aggregate_commitment}"]
    return "\n".join(lines) + "\n"
