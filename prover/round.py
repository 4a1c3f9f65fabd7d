"""Prove and verify one Multi-Krum round: files in, a self-describing round folder out.

A round folder holds everything a third party needs to check it, on any machine, with no
circuit rebuilt and no key set up (see prover.verifying):
    round.json        the circuit (shape, layout, ezkl version), the SRS, the SHA-256 of every
                      verifying file and the VKA digest a task's RoundVerifier pins
    settings.json, vk.key, vka.bytes, kzg.srs   the circuit's settings, verifying key, VK
                      artifact for the EVM, and the SRS the proof was made with
    input.json        the quantized updates with their slot tags, and the claimed sum (ezkl's input file)
    proof.json        ezkl's proof, with its public instances
    commitments.json  the commitment of every update and of the aggregate (the claimed sum)
    signed.json       (with signed commitments) each client's signed commitment record
    public.json       the public outputs by name: scores, mask, selected and absent clients, check_error
    summary.txt       the same for people
Verifying checks every one of these files against the proof; any other file is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import NNM_MULTIKRUM, krum_round, tagged_inputs
from stakelearn.circuits.krum_module import split_outputs
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.files import atomic_dir, write_bytes_atomic, write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import PreparedCircuit, RoundCircuit, input_json, prepare
from stakelearn.prover.commitments import commit, proof_commitments
from stakelearn.prover.evm import vka_digest
from stakelearn.prover.inputs import check_input_range
from stakelearn.prover.isolate import StepStats
from stakelearn.prover.verifying import SHIPPED, check_text, ship_verifying_files, shipped_circuit, unexpected_files

MANIFEST = "round.json"
COMMITMENTS = "commitments.json"
PUBLIC = "public.json"
SUMMARY = "summary.txt"
SIGNED = "signed.json"
ROUND_FILES = {MANIFEST, steps.INPUT, steps.PROOF, COMMITMENTS, PUBLIC, SUMMARY, SIGNED, *SHIPPED}


@dataclass(frozen=True)
class RoundOutcome:
    """What a verified round claims, read from its proofs' public instances (any kind of round)."""

    scores: list[int]
    mask: list[int]
    check_error: int
    update_commitments: list[str]  # what the clients signed, hex (a round in chunks: the chunk roots)
    aggregate_commitment: str
    absent: list[int]  # slots the circuit treated as absent (tag 0: the zero vector)
    chunks: int = 0  # the chunk proofs of a round proven in chunks; 0 for one proof

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
    if absent is not None and np.count_nonzero(absent) > circuit.params.allowed_absent:
        raise InputError(
            f"{np.count_nonzero(absent)} clients are absent; this round tolerates at most "
            f"min(f, n - m - f, n - 2f - 3) = {circuit.params.allowed_absent}"
        )
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
    signed: list[dict] | None = None,
) -> RoundOutcome:
    """Prove the round over ``updates`` (an ``[n, d]`` integer matrix; the ``absent`` slots, a
    boolean mask, are left out) into the new folder ``out``. With ``signed`` (one record per
    present client, in slot order, each with its ``commitment`` in hex: what the clients signed,
    their signatures checked by the caller), an update whose commitment differs is refused
    before proving, and the records are kept as ``signed.json``. Steps that ran are timed into
    ``stats``."""
    stats = {} if stats is None else stats
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    x = check_updates(updates, circuit, absent)
    reference = krum_round(x, circuit.params, absent, circuit.absent_distance)
    inputs = tagged_inputs(x, absent)
    data = input_json(inputs, reference.total)
    check_input_range(data, circuit.input_bounds(), circuit.input_names)  # an unprovable input hangs ezkl
    prepared = prepare(circuit, ceremony_srs, stats)
    commitments = [
        commit(row, prepared.vk, prepared.settings, prepared.srs.path).hex() for row in [*inputs, reference.total]
    ]
    if signed is not None:
        check_signed(signed, commitments[:-1], absent)
    with atomic_dir(out) as tmp:
        write_json_atomic(tmp / steps.INPUT, data)
        witness = steps.gen_witness(tmp / steps.INPUT, prepared.compiled, tmp / steps.WITNESS)
        outputs = public_outputs(witness["outputs"][0], circuit.n)
        if outputs["scores"] != reference.scores.tolist() or outputs["mask"] != reference.mask.astype(int).tolist():
            raise ProofError("the circuit's witness disagrees with the numpy reference; this is a bug")
        stats["prove"] = prepared.prove_in_child(
            f"proving round n={circuit.n} d={circuit.d} (logrows {prepared.logrows})", tmp
        )
        (tmp / steps.WITNESS).unlink()
        verifying = ship_verifying_files(prepared, tmp)
        manifest_data = manifest(prepared, sources, verifying)
        write_json_atomic(tmp / MANIFEST, manifest_data)
        write_json_atomic(tmp / COMMITMENTS, {"updates": commitments[:-1], "aggregate": commitments[-1]})
        if signed is not None:
            write_json_atomic(tmp / SIGNED, signed)
        outcome = outcome_of(
            public_outputs(json.loads((tmp / steps.PROOF).read_text())["instances"][0], circuit.n), commitments
        )
        write_json_atomic(tmp / PUBLIC, public_json(outcome))
        write_bytes_atomic(tmp / SUMMARY, summary_text(outcome, manifest_data).encode())
        verify_round(tmp)  # the folder as a third party gets it
    return outcome


def check_signed(signed: list[dict], commitments: list[str], absent: np.ndarray | None) -> None:
    """Each present slot's commitment must be the one its client signed."""
    present = [i for i in range(len(commitments)) if absent is None or not absent[i]]
    if [record.get("slot") for record in signed] != present:
        raise InputError(
            f"expected one signed commitment per present client, slots {present} in order, "
            f"got slots {[record.get('slot') for record in signed]}"
        )
    for record in signed:
        if record.get("commitment", "").removeprefix("0x") != commitments[record["slot"]]:
            raise InputError(
                f"update {record['slot']} does not match the commitment its client signed: "
                "it is not the update the client committed to"
            )


def manifest(prepared: PreparedCircuit, sources: list[str] | None, verifying: dict[str, str]) -> dict:
    return {
        "circuit": prepared.circuit.description(),
        "circuit_digest": prepared.circuit.digest,
        "logrows": prepared.logrows,
        "srs": {
            "insecure": prepared.srs.insecure,
            "label": prepared.srs.label,
            "sha256": prepared.srs.sha256(),
        },
        "verifying": verifying,
        "vka_digest": "0x" + vka_digest(prepared.vka).hex(),
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


def round_commitments(folder: Path) -> list[bytes]:
    """A round folder's commitments as the chain takes them: the n updates', then the aggregate's."""
    _, _, commitments = load_round(folder)
    return [bytes.fromhex(c) for c in [*commitments["updates"], commitments["aggregate"]]]


def circuit_of(manifest_data: dict) -> RoundCircuit:
    fields = manifest_data["circuit"]
    if fields.get("ezkl") != steps.EZKL_VERSION:
        raise InputError(f"round was proven with ezkl {fields.get('ezkl')}, this is ezkl {steps.EZKL_VERSION}")
    return RoundCircuit(
        **{k: fields[k] for k in ("n", "f", "m", "d", "max_int", "num_inner_cols")},
        min_logrows=fields.get("min_logrows", 0),
        rule=rule_of(fields),
    )


def rule_of(description: dict) -> str:
    """The aggregation rule a round circuit's description names in its kind, ``<rule>-round-<source>``."""
    return description["circuit"].rsplit("-round-", 1)[0]


def round_verifying_files(folder: Path, ceremony_srs: Path | None = None) -> PreparedCircuit:
    """The round folder's own circuit files (checked against its manifest): nothing is rebuilt."""
    manifest_data, _, _ = load_round(folder)
    return shipped_circuit(folder, circuit_of(manifest_data), manifest_data, ceremony_srs)


def outcome_of(outputs: dict, commitments: list[str]) -> RoundOutcome:
    return RoundOutcome(
        scores=outputs["scores"],
        mask=outputs["mask"],
        check_error=outputs["check_error"],
        update_commitments=commitments[:-1],
        aggregate_commitment=commitments[-1],
        absent=[i for i, bit in enumerate(outputs["absent"]) if bit == 1],
    )


def verify_round(folder: Path, ceremony_srs: Path | None = None) -> RoundOutcome:
    """Check a round folder with the circuit files it ships (no rebuild, no set-up): the proof,
    the commitments against the proof, the public outputs, and every other file it holds (the
    inputs re-committed, the public and summary files regenerated, the signed commitments).
    Raises ProofError if any fails."""
    if folder.is_dir():
        unexpected_files(folder, ROUND_FILES)  # before reading: a link could point anywhere
    manifest_data, proof, commitments = load_round(folder)
    circuit = circuit_of(manifest_data)
    prepared = shipped_circuit(folder, circuit, manifest_data, ceremony_srs)
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
        raise ProofError(
            "the claimed aggregate is not the sum of the selected updates, or a slot tag is wrong (check_error != 0)"
        )
    if sorted(set(outputs["mask"])) not in ([1], [0, 1]) or sum(outputs["mask"]) != circuit.m:
        raise ProofError(f"the selection mask does not select exactly m={circuit.m} clients")
    if sorted(set(outputs["absent"])) not in ([], [0], [1], [0, 1]):
        raise ProofError("the absent flags are not bits")
    outcome = outcome_of(outputs, in_proof)
    check_committed_inputs(folder / steps.INPUT, prepared, in_proof)
    if (folder / SIGNED).exists():
        signed = json.loads((folder / SIGNED).read_text())
        try:
            check_signed(signed, in_proof[:-1], np.isin(np.arange(circuit.n), outcome.absent))
        except InputError as error:
            raise ProofError(f"{SIGNED}: {error}") from None
    check_text(folder / PUBLIC, json.dumps(public_json(outcome), indent=2) + "\n")
    check_text(folder / SUMMARY, summary_text(outcome, manifest_data))
    return outcome


def check_committed_inputs(path: Path, prepared: PreparedCircuit, in_proof: list[str]) -> None:
    """An input.json, when shipped, must hold exactly the vectors the proof committed to (hex, in order)."""
    if not path.exists():
        return
    rows = json.loads(path.read_text())["input_data"]
    if len(rows) != len(in_proof) or any(
        commit(np.asarray(row, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path).hex() != want
        for row, want in zip(rows, in_proof)
    ):
        raise ProofError(f"{path} does not hold the vectors the proof committed to: it was edited after proving")


def public_json(outcome: RoundOutcome) -> dict:
    return {
        "scores": outcome.scores,
        "mask": outcome.mask,
        "selected": outcome.selected,
        "absent": outcome.absent,
        "check_error": outcome.check_error,
    }


def summary_text(outcome: RoundOutcome, manifest_data: dict) -> str:
    c = manifest_data["circuit"]
    names = manifest_data["sources"] or [f"update {i}" for i in range(c["n"])]
    lines = [
        f"{rule_of(c)} round: n={c['n']} clients, f={c['f']} tolerated, m={c['m']} selected, d={c['d']} parameters",
        f"circuit {manifest_data['circuit_digest']}, logrows {manifest_data['logrows']}, {manifest_data['srs']['label']}",
        f"verifying key artifact (VKA) digest {manifest_data['vka_digest']}: a task's RoundVerifier pins it",
        "",
        f"{'client':>6}  {'score':>14}  {'selected':>8}  commitment  source",
    ]
    for i, (score, bit) in enumerate(zip(outcome.scores, outcome.mask)):
        status = "absent" if i in outcome.absent else "yes" if bit else "left out"
        lines.append(f"{i:>6}  {score:>14}  {status:>8}  {outcome.update_commitments[i][:10]}  {names[i]}")
    lines += [
        "",
        f"selected: {outcome.selected}",
        f"aggregate ({'weighted sum of the mixed selected' if rule_of(c) == NNM_MULTIKRUM else 'sum of selected'}) "
        f"commitment: 0x{outcome.aggregate_commitment}",
    ]
    return "\n".join(lines) + "\n"
