"""The kinds of round, behind one interface.

A task's rounds are proven as one proof (prover.round) or in chunks (prover.chunked_round).
Everything outside the prover sees a :class:`Round` only: it commits a client's update, proves
a round into a folder, verifies and reads a folder, and names what the chain's verifier takes.
The kind is chosen once, by the task's circuit when proving (:func:`round_for`) and by a
folder's manifest when reading one (:func:`open_round`). A new kind of round is one new class
here, registered in ``KINDS``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from eth_utils import keccak

from stakelearn.circuits.chunk import chunk_count, split_vector, triangle_size
from stakelearn.circuits.krum import KrumParams, tag_update, tagged_inputs
from stakelearn.errors import ArtifactError, ProofError
from stakelearn.prover import chunked_round
from stakelearn.prover import round as one_proof
from stakelearn.prover.chunked import (
    ChunkCircuit,
    absent_slot_commitment,
    chunk_root,
    combine_circuit_for,
    parts_commitment,
    update_chunk_commitments,
)
from stakelearn.prover.circuit import PreparedCircuit, RoundCircuit, prepare
from stakelearn.prover.commitments import commit
from stakelearn.prover.evm import vka_digest
from stakelearn.prover.round import MANIFEST, RoundOutcome
from stakelearn.prover.steps import PROOF
from stakelearn.prover.verifying import refuse_links


class Round(Protocol):
    """One kind of round over a task's circuits."""

    kind: ClassVar[str]  # the word a round folder's manifest names it by
    verifier_contract: ClassVar[str]  # the contract (verifier_contracts/src) that verifies it on chain

    @property
    def prepared(self) -> PreparedCircuit:
        """The circuit a client's update is committed with (its key makes the commitments)."""

    @property
    def params(self) -> KrumParams: ...

    @property
    def d(self) -> int:
        """The parameters per update."""

    def update_commitment(self, update: np.ndarray, slot: int) -> bytes:
        """What the client in ``slot`` signs for its quantized ``update``: the commitment the proof carries."""

    def absent_commitment(self) -> bytes:
        """What an absent client's slot holds."""

    def slot_commitments(self, updates: np.ndarray, absent: np.ndarray) -> list[bytes]:
        """What each slot of a round over ``updates`` commits to on chain (an absent slot's own)."""

    def aggregate_commitment(self, total: np.ndarray) -> bytes:
        """The on-chain commitment of a round's aggregate (its claimed sum)."""

    def prove(
        self,
        updates: np.ndarray,
        out: Path,
        *,
        absent: np.ndarray | None = None,
        signed: list[dict] | None = None,
        sources: list[str] | None = None,
        stats: dict | None = None,
        ray_address: str | None = None,
        workers: int | None = None,
    ) -> RoundOutcome:
        """Prove the round over the ``[n, d]`` quantized ``updates`` into the new folder ``out``
        (prover.round.prove_round says what ``absent`` and ``signed`` do); the proving steps are
        timed into ``stats``. A round that proves in parts proves them on the Ray cluster at
        ``ray_address``, else in ``workers`` local processes."""

    def proving_seconds(self, stats: dict) -> float | None:
        """The prover's seconds that ``prove`` timed into ``stats``."""

    def verify(self, folder: Path) -> RoundOutcome:
        """Check a round folder of this round's circuits with the files it ships (no rebuild,
        no set-up); ProofError if any check fails."""

    def commitments(self, folder: Path) -> list[bytes]:
        """A verified folder's commitments as the chain takes them: the n updates', then the aggregate's."""

    def submitted_proof(self, folder: Path) -> tuple[Path, Path]:
        """The proof ``verifyRound`` takes (submitRound carries it) and its VKA."""

    def staged_proofs(self, folder: Path) -> tuple[list[Path], Path | None]:
        """The proof folders staged on chain before ``verifyRound`` (none for one proof), and their VKA."""

    def verifier_vkas(self) -> list[Path]:
        """The VKAs the verifier pins, registered with the reusable ezkl verifier."""

    def verifier_args(self) -> tuple:
        """The verifier contract's constructor arguments after the reusable verifier's address."""

    def pinned(self) -> dict[str, object]:
        """What the verifier contract's views must answer for a round of these circuits, in the
        order its constructor takes them."""

    @property
    def mask_offset(self) -> int:
        """Where the selection mask starts in the submitted proof's public instances."""

    def digests_line(self) -> str:
        """The VKA digests for people, and where to compare them."""

    def summary(self, folder: Path, outcome: RoundOutcome) -> str:
        """A proven round for people."""


class OneProofRound:
    """A round proven in one proof by the round circuit (prover.round)."""

    kind: ClassVar[str] = "round"
    verifier_contract: ClassVar[str] = "RoundVerifier"

    def __init__(self, prepared: PreparedCircuit, ceremony_srs: Path | None = None) -> None:
        self.prepared = prepared
        self.ceremony_srs = ceremony_srs

    @classmethod
    def of_circuit(cls, circuit: RoundCircuit, d: int, ceremony_srs: Path | None) -> OneProofRound:
        return cls(prepare(circuit, ceremony_srs), ceremony_srs)

    @classmethod
    def of_folder(cls, folder: Path, ceremony_srs: Path | None) -> OneProofRound:
        return cls(one_proof.round_verifying_files(folder, ceremony_srs), ceremony_srs)

    @property
    def circuit(self) -> RoundCircuit:
        return self.prepared.circuit

    @property
    def params(self) -> KrumParams:
        return self.circuit.params

    @property
    def d(self) -> int:
        return self.circuit.d

    def _commit(self, vector: np.ndarray) -> bytes:
        return commit(vector, self.prepared.vk, self.prepared.settings, self.prepared.srs.path)

    def update_commitment(self, update: np.ndarray, slot: int) -> bytes:
        return self._commit(tag_update(update, slot))

    def slot_commitments(self, updates: np.ndarray, absent: np.ndarray) -> list[bytes]:
        return [self._commit(row) for row in tagged_inputs(updates, absent)]

    def absent_commitment(self) -> bytes:
        return one_proof.absent_commitment(self.prepared)

    def aggregate_commitment(self, total: np.ndarray) -> bytes:
        return parts_commitment([total], self.prepared, chunked=False)

    def prove(
        self, updates, out, *, absent=None, signed=None, sources=None, stats=None, ray_address=None, workers=None
    ):
        return one_proof.prove_round(
            updates, self.circuit, out, self.ceremony_srs, sources, stats, absent=absent, signed=signed
        )

    def proving_seconds(self, stats: dict) -> float | None:
        return stats["prove"].seconds if "prove" in stats else None

    def verify(self, folder: Path) -> RoundOutcome:
        outcome = one_proof.verify_round(folder, self.ceremony_srs)
        _check_same_circuit(folder, one_proof.load_round(folder)[0]["circuit_digest"], self.circuit.digest)
        return outcome

    def commitments(self, folder: Path) -> list[bytes]:
        return one_proof.round_commitments(folder)

    def submitted_proof(self, folder: Path) -> tuple[Path, Path]:
        return folder / PROOF, self.prepared.vka

    def staged_proofs(self, folder: Path) -> tuple[list[Path], Path | None]:
        return [], None

    def verifier_vkas(self) -> list[Path]:
        return [self.prepared.vka]

    def verifier_args(self) -> tuple:
        return tuple(self.pinned().values())  # RoundVerifier's constructor takes what it pins, in order

    def pinned(self) -> dict[str, object]:
        c = self.circuit
        return {
            "vkaDigest": vka_digest(self.prepared.vka),
            "clients": c.n,
            "byzantine": c.f,
            "selected": c.m,
            "aggregation": c.params.rule_id,
            "absentCommitment": keccak(self.absent_commitment()),
        }

    @property
    def mask_offset(self) -> int:
        return self.params.n  # scores (n), then the mask

    def digests_line(self) -> str:
        return (
            f"circuit VKA digest 0x{vka_digest(self.prepared.vka).hex()}: "
            "compare it with the task's RoundVerifier (vkaDigest) to know the circuit is the task's"
        )

    def summary(self, folder: Path, outcome: RoundOutcome) -> str:
        return (folder / one_proof.SUMMARY).read_text()


class ChunkedRound:
    """A round proven in chunks (prover.chunked_round): K chunk proofs, each over C coordinates
    of every update, and one combine proof over the sum of their partial Gram matrices."""

    kind: ClassVar[str] = chunked_round.KIND
    verifier_contract: ClassVar[str] = "ChunkedRoundVerifier"

    def __init__(
        self, chunk: PreparedCircuit, d: int, ceremony_srs: Path | None = None, combine: PreparedCircuit | None = None
    ) -> None:
        self.prepared = chunk
        self.d = d
        self.ceremony_srs = ceremony_srs
        if combine is not None:
            self.__dict__["combine"] = combine

    @functools.cached_property
    def combine(self) -> PreparedCircuit:
        """The combine circuit, set up only when a proof needs it (a client committing does not)."""
        return prepare(combine_circuit_for(self.circuit, self.d), self.ceremony_srs)

    @classmethod
    def of_circuit(cls, circuit: ChunkCircuit, d: int, ceremony_srs: Path | None) -> ChunkedRound:
        return cls(prepare(circuit, ceremony_srs), d, ceremony_srs)

    @classmethod
    def of_folder(cls, folder: Path, ceremony_srs: Path | None) -> ChunkedRound:
        _, chunk, combine = chunked_round.chunked_circuits(folder, ceremony_srs)
        return cls(chunk, combine.circuit.d, ceremony_srs, combine)

    @property
    def circuit(self) -> ChunkCircuit:
        return self.prepared.circuit

    @property
    def params(self) -> KrumParams:
        return self.circuit.params

    @property
    def chunks(self) -> int:
        return chunk_count(self.d, self.circuit.chunk)

    def update_commitment(self, update: np.ndarray, slot: int) -> bytes:
        return chunk_root(update_chunk_commitments(update, slot, self.prepared))

    def slot_commitments(self, updates: np.ndarray, absent: np.ndarray) -> list[bytes]:
        vacant = self.absent_commitment()
        return [vacant if absent[i] else self.update_commitment(row, i) for i, row in enumerate(updates)]

    def absent_commitment(self) -> bytes:
        return absent_slot_commitment(self.prepared, self.d)

    def aggregate_commitment(self, total: np.ndarray) -> bytes:
        return parts_commitment(split_vector(total, self.circuit.chunk), self.prepared, chunked=True)

    def prove(
        self, updates, out, *, absent=None, signed=None, sources=None, stats=None, ray_address=None, workers=None
    ):
        # a killed prover's proven chunks are kept in out's .partial twin and reused
        return chunked_round.prove_chunked_round(
            updates,
            self.circuit,
            out,
            absent=absent,
            signed=signed,
            sources=sources,
            ceremony_srs=self.ceremony_srs,
            ray_address=ray_address,
            workers=workers,
            chunk_stats=stats,
        )

    def proving_seconds(self, stats: dict) -> float | None:
        return sum(s.prove_seconds for s in stats.values()) if stats else None

    def verify(self, folder: Path) -> RoundOutcome:
        outcome = chunked_round.verify_chunked_round(folder, self.ceremony_srs)
        manifest = json.loads((folder / MANIFEST).read_text())
        for part, own in (("chunk_circuit", self.circuit), ("combine_circuit", self.combine.circuit)):
            _check_same_circuit(folder, manifest[part]["circuit_digest"], own.digest)
        return outcome

    def commitments(self, folder: Path) -> list[bytes]:
        return chunked_round.chunked_commitments(folder)

    def submitted_proof(self, folder: Path) -> tuple[Path, Path]:
        return folder / chunked_round.COMBINE / PROOF, self.combine.vka

    def staged_proofs(self, folder: Path) -> tuple[list[Path], Path | None]:
        return chunked_round.chunk_proof_folders(folder, self.chunks), self.prepared.vka

    def verifier_vkas(self) -> list[Path]:
        return [self.prepared.vka, self.combine.vka]

    def verifier_args(self) -> tuple:
        return tuple(self.pinned().values())  # ChunkedRoundVerifier's constructor takes what it pins, in order

    def pinned(self) -> dict[str, object]:
        c = self.combine.circuit
        return {
            "chunkVkaDigest": vka_digest(self.prepared.vka),
            "vkaDigest": vka_digest(self.combine.vka),
            "clients": c.n,
            "byzantine": c.f,
            "selected": c.m,
            "CHUNKS": self.chunks,
            "absentCommitment": keccak(self.absent_commitment()),
        }

    @property
    def mask_offset(self) -> int:
        n = self.params.n
        return triangle_size(n) + 2 * n  # the combine proof's Gram (t), absent (n), scores (n), then the mask

    def digests_line(self) -> str:
        return (
            f"chunk circuit VKA digest 0x{vka_digest(self.prepared.vka).hex()}, combine circuit VKA digest "
            f"0x{vka_digest(self.combine.vka).hex()}: compare them with the task's ChunkedRoundVerifier "
            "(chunkVkaDigest, vkaDigest), or check with --rpc-url URL --verifier ADDR"
        )

    def summary(self, folder: Path, outcome: RoundOutcome) -> str:
        chunk = self.circuit.chunk
        return (
            f"scores: {outcome.scores}\nselected: {outcome.selected}\nabsent: {outcome.absent}\n"
            f"round proven in {outcome.chunks} chunks of {chunk} coordinates (clients commit with --chunk {chunk})\n"
        )


KINDS: dict[str, type] = {OneProofRound.kind: OneProofRound, ChunkedRound.kind: ChunkedRound}
ROUND_OF_CIRCUIT: dict[type, type] = {RoundCircuit: OneProofRound, ChunkCircuit: ChunkedRound}


def _check_same_circuit(folder: Path, digest: str, own: str) -> None:
    if digest != own:
        raise ProofError(f"{folder} was proven with circuit {digest}, not this round's {own}")


def round_for(circuit: RoundCircuit | ChunkCircuit, d: int, ceremony_srs: Path | None = None) -> Round:
    """The round a task's ``circuit`` proves over updates of ``d`` parameters, its keys set up or
    taken from the cache: one proof for a round circuit, chunks for a chunk circuit."""
    return ROUND_OF_CIRCUIT[type(circuit)].of_circuit(circuit, d, ceremony_srs)


def open_round(folder: Path, ceremony_srs: Path | None = None) -> Round:
    """The round a proven folder holds, built from the circuit files it ships (each checked
    against its manifest); nothing is rebuilt. ArtifactError if it is no round folder."""
    if folder.is_dir():
        refuse_links(folder)  # before reading anything: a link could point anywhere, a FIFO block
    try:
        kind = json.loads((folder / MANIFEST).read_text()).get("kind", OneProofRound.kind)
    except (OSError, ValueError, AttributeError):
        raise ArtifactError(f"{folder} is not a round folder: its {MANIFEST} is missing or unreadable") from None
    if kind not in KINDS:
        raise ArtifactError(f"{folder} holds a round of kind {kind!r}, which this StakeLearn does not know")
    return KINDS[kind].of_folder(folder, ceremony_srs)
