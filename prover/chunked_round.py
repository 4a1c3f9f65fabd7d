"""A round proven in chunks, as one self-describing folder that anyone can check anywhere.

    round.json           kind "chunked", d, the chunk count, both circuits, their SRS, the
                         SHA-256 of every shipped verifying file and both VKA digests
    chunk-circuit/       settings.json, vk.key, vka.bytes, kzg.srs of the chunk circuit
    combine-circuit/     the same for the combine circuit
    chunks/chunk-KKKKK/  input.json and proof.json of chunk k
    combine/             input.json and proof.json of the combine proof
    commitments.json     each client's chunk root commitment (what it signs) and its chunk
                         commitments; the aggregate's likewise
    signed.json          (with signed commitments) each client's signed commitment record
    public.json          scores, mask, selected and absent clients

The folder is proven in ``<out>.partial/`` and renamed to ``out`` once it verifies: a killed
prover run again with the same ``--out`` keeps the chunks already proven (prover.parallel).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from stakelearn.circuits.chunk import chunk_count, chunked_gram
from stakelearn.circuits.krum import krum_round
from stakelearn.errors import ArtifactError, InputError, ProofError
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.chunked import (
    ChunkCircuit,
    ChunkOutcome,
    CombineCircuit,
    check_chunked_round,
    chunk_root,
    combine_circuit_for,
    prove_combine,
    verify_chunk,
    verify_combine,
)
from stakelearn.prover.circuit import (
    PreparedCircuit,
    RoundCircuit,
    estimated_peak_mb,
    model_dir,
    natural_logrows,
    prepare,
)
from stakelearn.prover.parallel import ChunkStats, chunk_folder, chunk_jobs, prove_chunks
from stakelearn.prover.round import (
    COMMITMENTS,
    MANIFEST,
    PUBLIC,
    SIGNED,
    RoundOutcome,
    check_committed_inputs,
    check_signed,
    check_updates,
    manifest,
)
from stakelearn.prover.verifying import (
    SHIPPED,
    refuse_links,
    ship_verifying_files,
    shipped_circuit,
    unexpected_files,
)

KIND = "chunked"
CHUNK_CIRCUIT, COMBINE_CIRCUIT, CHUNKS, COMBINE = "chunk-circuit", "combine-circuit", "chunks", "combine"
CHUNKED_FILES = {MANIFEST, COMMITMENTS, PUBLIC, SIGNED, CHUNK_CIRCUIT, COMBINE_CIRCUIT, CHUNKS, COMBINE}


PROBE_CHUNK = 64  # the chunk whose compiled rows size the first guess


def _rows(circuit) -> int:
    return json.loads((model_dir(replace(circuit, min_logrows=0)) / steps.SETTINGS).read_text())["num_rows"]


def chunk_size_for(n: int, f: int, m: int, d: int, max_int: int, memory_mb: float, num_inner_cols: int = 8) -> int:
    """``d`` when today's one-proof round fits ``memory_mb`` per prover process, else the largest
    power-of-two chunk that does, by the prover's memory estimate (prover.circuit.estimated_peak_mb)
    of the compiled circuit's logrows. A chunk's rows grow linearly with C, so the rows of a
    64-coordinate chunk give the first guess, which is then compiled and halved until it fits:
    a few compilations, never one of a chunk far too large."""

    def fits(circuit) -> bool:
        return estimated_peak_mb(natural_logrows(circuit), num_inner_cols) <= memory_mb

    def chunk_circuit(chunk: int) -> ChunkCircuit:
        return ChunkCircuit(n, f, m, chunk, max_int, num_inner_cols)

    if fits(RoundCircuit(n, f, m, d, max_int, num_inner_cols)):
        return d
    logrows = max((k for k in range(1, 27) if estimated_peak_mb(k, num_inner_cols) <= memory_mb), default=0)
    rows_per_coordinate = _rows(chunk_circuit(PROBE_CHUNK)) / PROBE_CHUNK
    chunk = 2 ** max(3, math.floor(math.log2(max(1.0, 2**logrows / rows_per_coordinate))))
    chunk = min(chunk, 2 ** math.floor(math.log2(d)))
    while chunk > 8 and not fits(chunk_circuit(chunk)):
        chunk //= 2
    if not fits(chunk_circuit(chunk)):
        raise InputError(f"no chunk of 8 or more coordinates fits {memory_mb:.0f} MB per prover; give more memory")
    return chunk


def _manifest(chunk: PreparedCircuit, combine: PreparedCircuit, d: int, verifying: dict, sources: list[str]) -> dict:
    return {
        "kind": KIND,
        "d": d,
        "chunks": chunk_count(d, chunk.circuit.chunk),
        "chunk_circuit": manifest(chunk, None, verifying[CHUNK_CIRCUIT]),
        "combine_circuit": manifest(combine, None, verifying[COMBINE_CIRCUIT]),
        "sources": sources,
    }


def prove_chunked_round(
    updates: np.ndarray,
    chunk_circuit: ChunkCircuit,
    out: Path,
    *,
    absent: np.ndarray | None = None,
    signed: list[dict] | None = None,
    sources: list[str] | None = None,
    ceremony_srs: Path | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    chunk_stats: dict[int, ChunkStats] | None = None,
) -> RoundOutcome:
    """Prove the round over the ``[n, d]`` integer ``updates`` in chunks of
    ``chunk_circuit.chunk`` into the new folder ``out`` (chunk proofs locally or on Ray, then the
    combine proof). ``signed`` as for prover.round.prove_round: each record's commitment must be
    the client's chunk root. The chunks proven by this call are timed into ``chunk_stats``
    (prover.parallel.prove_chunks)."""
    if out.exists():
        raise InputError(f"output folder {out} already exists; choose another --out or remove it")
    c = chunk_circuit
    n, d = np.asarray(updates).shape
    combine_circuit = combine_circuit_for(c, d)
    x = check_updates(updates, combine_circuit, absent)
    reference = krum_round(x, combine_circuit.params, absent, combine_circuit.absent_distance)
    chunk, combine = prepare(c, ceremony_srs), prepare(combine_circuit, ceremony_srs)
    work = out.with_name(out.name + ".partial")
    jobs = chunk_jobs(x, reference.total, reference.mask, c.chunk, absent)
    outcomes = prove_chunks(chunk, jobs, work / CHUNKS, ray_address=ray_address, workers=workers, stats=chunk_stats)
    commitments = _commitments(outcomes, n)
    if signed is not None:
        check_signed(signed, commitments["updates"], absent)
    if (work / COMBINE).exists():
        shutil.rmtree(work / COMBINE)  # proven from scratch: it takes seconds
    prove_combine(combine, chunked_gram(x, c.chunk), work / COMBINE, absent)
    verifying = {}
    for name, prepared in ((CHUNK_CIRCUIT, chunk), (COMBINE_CIRCUIT, combine)):
        shutil.rmtree(work / name, ignore_errors=True)
        (work / name).mkdir()
        verifying[name] = ship_verifying_files(prepared, work / name)
    write_json_atomic(work / MANIFEST, _manifest(chunk, combine, d, verifying, sources or []))
    write_json_atomic(work / COMMITMENTS, commitments)
    if signed is not None:
        write_json_atomic(work / SIGNED, signed)
    outcome = verify_chunked_round(work, ceremony_srs, check_public=False)
    write_json_atomic(work / PUBLIC, _public(outcome))
    work.rename(out)
    return outcome


def _commitments(outcomes: list[ChunkOutcome], n: int) -> dict:
    """commitments.json: per slot its chunk commitments and their chunk root; the aggregate's too."""
    chunks = [[o.commitments[i] for o in outcomes] for i in range(n + 1)]
    roots = [chunk_root([bytes.fromhex(h) for h in row]).hex() for row in chunks]
    return {
        "updates": roots[:n],
        "aggregate": roots[n],
        "update_chunks": chunks[:n],
        "aggregate_chunks": chunks[n],
    }


def _public(outcome: RoundOutcome) -> dict:
    return {
        "scores": outcome.scores,
        "mask": outcome.mask,
        "selected": outcome.selected,
        "absent": outcome.absent,
        "chunks": outcome.chunks,
    }


def is_chunked_round(folder: Path) -> bool:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("kind") == KIND
    except (OSError, ValueError):
        return False


def chunked_circuits(folder: Path, ceremony_srs: Path | None = None) -> tuple[dict, PreparedCircuit, PreparedCircuit]:
    """The folder's manifest and its two shipped circuits (each file checked against the manifest)."""
    if folder.is_dir():
        refuse_links(folder)  # every reader of the folder starts here or in verify_chunked_round
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        fields = manifest["chunk_circuit"]["circuit"], manifest["combine_circuit"]["circuit"]
    except (OSError, ValueError, KeyError) as error:
        raise ArtifactError(f"{folder} is not a chunked round folder ({error})") from None
    for description in fields:
        if description.get("ezkl") != steps.EZKL_VERSION:
            raise InputError(f"round was proven with ezkl {description.get('ezkl')}, this is ezkl {steps.EZKL_VERSION}")
    keys = ("n", "f", "m", "max_int", "num_inner_cols")
    chunk_circuit = ChunkCircuit(
        **{k: fields[0][k] for k in keys}, chunk=fields[0]["chunk"], min_logrows=fields[0].get("min_logrows", 0)
    )
    combine_circuit = CombineCircuit(
        **{k: fields[1][k] for k in keys}, d=fields[1]["d"], min_logrows=fields[1].get("min_logrows", 0)
    )
    chunk = shipped_circuit(folder / CHUNK_CIRCUIT, chunk_circuit, manifest["chunk_circuit"], ceremony_srs)
    combine = shipped_circuit(folder / COMBINE_CIRCUIT, combine_circuit, manifest["combine_circuit"], ceremony_srs)
    return manifest, chunk, combine


def chunked_commitments(folder: Path) -> list[bytes]:
    """The round's commitments as the chain takes them: each client's chunk root, then the aggregate's."""
    commitments = json.loads((folder / COMMITMENTS).read_text())
    return [bytes.fromhex(c) for c in [*commitments["updates"], commitments["aggregate"]]]


def chunk_proof_folders(folder: Path, chunks: int) -> list[Path]:
    return [chunk_folder(folder / CHUNKS, k) for k in range(chunks)]


def check_zero_padding(last_input: Path, d: int, chunk: int, n: int) -> None:
    """The last chunk's coordinates beyond ``d`` must be zero in every slot's slice and in the
    claimed sum. The chunk circuit does not constrain them (one circuit serves every chunk), so a
    slice could hide coordinates that move the Krum distances, or the aggregate hold values
    that no honest client re-deriving it from the d-vector reproduces. ``last_input`` (checked
    against the proof's commitments before this) must be shipped when the last chunk is partial."""
    used = d - (chunk_count(d, chunk) - 1) * chunk
    if used == chunk:
        return
    try:
        rows = json.loads(last_input.read_text())["input_data"]
    except (OSError, ValueError, KeyError):
        raise ProofError(
            f"{last_input} is missing or unreadable: the last chunk is partial ({used} of {chunk} coordinates), "
            "and its padding can only be checked from its committed input"
        ) from None
    for i, row in enumerate(rows[: n + 1]):
        if any(row[used:chunk]):
            who = f"slot {i}'s slice" if i < n else "the claimed sum"
            raise ProofError(
                f"{last_input}: {who} holds non-zero values in the last chunk's padding (coordinates {d} and "
                "beyond): they would count in the Krum distances or the aggregate without being part of the update"
            )


def verify_chunked_round(folder: Path, ceremony_srs: Path | None = None, check_public: bool = True) -> RoundOutcome:
    """Check a chunked round folder with the circuit files it ships: every chunk proof and the
    combine proof with ezkl, the links between them (prover.chunked.check_chunked_round), the
    chunk roots, the signed records and the public file. Raises ProofError if any fails."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder} is not a folder: a chunked round is one")
    refuse_links(folder)  # before reading anything: a link could point anywhere, a FIFO block
    extra = [p.name for p in sorted(folder.iterdir()) if p.name not in CHUNKED_FILES]
    if extra:
        raise ProofError(f"{folder} holds {extra[0]}, which a chunked round folder does not; remove it")
    for name in (CHUNK_CIRCUIT, COMBINE_CIRCUIT):
        unexpected_files(folder / name, set(SHIPPED))
    manifest, chunk, combine = chunked_circuits(folder, ceremony_srs)
    n, count = chunk.circuit.n, manifest["chunks"]
    if count != chunk_count(combine.circuit.d, chunk.circuit.chunk) or manifest["d"] != combine.circuit.d:
        raise ProofError("the manifest's chunk count is not d / C")
    folders = chunk_proof_folders(folder, count)
    if sorted(p.name for p in (folder / CHUNKS).iterdir()) != [p.name for p in folders]:
        raise ProofError(f"{folder / CHUNKS} must hold exactly chunk-00000 .. chunk-{count - 1:05d}")
    for path in [*folders, folder / COMBINE]:
        unexpected_files(path, {steps.INPUT, steps.PROOF})
    outcomes = [verify_chunk(chunk, path) for path in folders]
    for path, outcome in zip(folders, outcomes):
        check_committed_inputs(path / steps.INPUT, chunk, outcome.commitments)
    check_zero_padding(folders[-1] / steps.INPUT, combine.circuit.d, chunk.circuit.chunk, n)
    combined = verify_combine(combine, folder / COMBINE)
    if (folder / COMBINE / steps.INPUT).exists():
        gram, flags = json.loads((folder / COMBINE / steps.INPUT).read_text())["input_data"]
        if [steps.felt_to_int(g) for g in gram] != combined.gram or flags != combined.absent:
            raise ProofError(f"{folder / COMBINE / steps.INPUT} is not the combine proof's public input")
    commitments = json.loads((folder / COMMITMENTS).read_text())
    if commitments != _commitments(outcomes, n):
        raise ProofError(f"{COMMITMENTS} does not hold the chunk proofs' commitments and their roots")
    absent = combined.absent
    signed_lists = [None if absent[i] else commitments["update_chunks"][i] for i in range(n)]
    check_chunked_round(outcomes, combined, signed_lists, absent)
    outcome = RoundOutcome(
        scores=combined.scores,
        mask=combined.mask,
        check_error=0,  # each chunk proof's, checked by verify_chunk
        update_commitments=commitments["updates"],
        aggregate_commitment=commitments["aggregate"],
        absent=[i for i, bit in enumerate(absent) if bit],
        chunks=count,
    )
    if (folder / SIGNED).exists():
        try:
            check_signed(json.loads((folder / SIGNED).read_text()), commitments["updates"], np.array(absent, bool))
        except InputError as error:
            raise ProofError(f"{SIGNED}: {error}") from None
    if check_public and json.loads((folder / PUBLIC).read_text()) != _public(outcome):
        raise ProofError(f"{folder / PUBLIC} does not say what the proofs say: it was edited after proving")
    return outcome
