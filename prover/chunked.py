"""Chunked rounds: the ezkl configurations of the chunk and combine circuits, and proving them.

Both circuits go through :func:`stakelearn.prover.circuit.prepare` like the round circuit
(compiled once per shape, keys cached per SRS). A chunk proof's inputs are committed
(``polycommit``): client ``i``'s chunk commitment is the ``i``-th 64-byte point of the proof,
which the client computes itself from its tagged slice and the chunk circuit's verifying key.
The combine circuit's inputs are public: its Gram input is a sum the chain computes from the
chunk proofs' public outputs, so it must be readable, not committed.

:func:`check_chunked_round` is the off-chain twin of the checks that tie the proofs of one
round together (what a contract will do): each chunk commitment is the signed one, every chunk
checked its sum under the combine proof's mask, and the combine proof's Gram matrix is the sum
of the chunks'.

A vector proven in K chunks (a client's update, the aggregate, a chunked model) is committed as
one 64-byte value, the Merkle root of its K chunk commitments then K (:func:`chunk_root`, the
twin of verifier_contracts/src/libraries/ChunkMerkle.sol): one chunk is checked against it with
a path of log2(K) hashes (:func:`chunk_path`), and staging on chain grows it chunk by chunk.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
from eth_utils import keccak

from stakelearn.circuits import chunk_module, krum_module
from stakelearn.circuits.chunk import (
    chunk_count,
    chunk_gram,
    chunk_round,
    combine,
    split_vector,
    tag_slices,
    triangle,
    triangle_size,
)
from stakelearn.circuits.krum import KrumParams, absent_distance, slot_tag
from stakelearn.errors import InputError, ProofError
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import (
    DECOMP_BASE,
    PreparedCircuit,
    circuit_description,
    committed_integer_run_args,
    description_digest,
    selection_legs,
)
from stakelearn.prover.commitments import commit, felts, proof_commitments
from stakelearn.prover.inputs import check_input_range
from stakelearn.prover.isolate import StepStats

# Both circuit sources (the combine reuses krum_module's selection) name the keys.
_SOURCES = inspect.getsource(chunk_module) + inspect.getsource(krum_module)
SOURCE_DIGEST = hashlib.sha256(_SOURCES.encode()).hexdigest()[:16]


def _legs(largest: int) -> int:
    """Base-2^8 digits for comparisons of values within +-``largest`` (one bit for the sign)."""
    return math.ceil((largest.bit_length() + 1) / math.log2(DECOMP_BASE))


def _calibration_matrix(n: int, d: int, max_int: int) -> np.ndarray:
    """Extreme-valued sample updates: calibration sizes ranges for the worst case."""
    return np.random.default_rng(0).choice([-max_int, 0, max_int], size=(n, d))


@dataclass(frozen=True)
class ChunkCircuit:
    """The chunk circuit of a round shape (n, f, m) for chunks of ``chunk`` coordinates."""

    n: int
    f: int
    m: int
    chunk: int
    max_int: int
    num_inner_cols: int = 8
    min_logrows: int = 0

    def __post_init__(self) -> None:
        KrumParams(self.n, self.f, self.m)
        if self.chunk < 1:
            raise InputError(f"chunk size must be >= 1, got {self.chunk}")
        if not self.n < self.max_int <= 2**15:  # the slot tags 1..n go through the range lookup
            raise InputError(f"max_int must be in {self.n + 1}..32768, got {self.max_int}")

    @property
    def params(self) -> KrumParams:
        return KrumParams(self.n, self.f, self.m)

    @property
    def lookup_bound(self) -> int:
        return self.max_int

    @property
    def decomp_legs(self) -> int:
        """The only comparison is the absent flag's ReLU of ``1 - tag``."""
        return _legs(self.max_int + 1)

    @property
    def label(self) -> str:
        return f"chunk circuit n={self.n} C={self.chunk}"

    @property
    def largest_input(self) -> int:
        return self.chunk + 1

    @property
    def input_names(self) -> list[str]:
        return chunk_module.chunk_input_names(self.n)

    def input_bounds(self) -> list[tuple[int, int]]:
        bound = self.m * self.max_int
        return [(-self.max_int, self.max_int)] * self.n + [(-bound, bound), (0, 1)]

    def export(self, path: Path) -> Path:
        return chunk_module.export_chunk_onnx(self.n, self.m, self.chunk, self.max_int, path)

    def calibration_input(self) -> dict:
        """Extreme values, the most slots absent a round allows, the first m present selected."""
        sample = _calibration_matrix(self.n, self.chunk, self.max_int)
        absent = np.arange(self.n) >= self.n - self.params.allowed_absent
        mask = (np.arange(self.n) < self.m).astype(np.int64)
        return chunk_input_json(tag_slices(sample, absent), (mask[:, None] * sample).sum(axis=0), mask)

    def description(self) -> dict:
        return circuit_description(f"chunk-{SOURCE_DIGEST}", self)

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def run_args(self) -> ezkl.PyRunArgs:
        return committed_integer_run_args(self.num_inner_cols, self.decomp_legs)


@dataclass(frozen=True)
class CombineCircuit:
    """The combine circuit of a round shape (n, f, m); ``d`` and ``max_int`` only size the
    absent distance and the comparisons (its rows do not depend on ``d``)."""

    n: int
    f: int
    m: int
    d: int
    max_int: int
    num_inner_cols: int = 8
    min_logrows: int = 0

    def __post_init__(self) -> None:
        KrumParams(self.n, self.f, self.m)
        if self.d < 1 or not 1 <= self.max_int <= 2**15:
            raise InputError(f"need d >= 1 and max_int in 1..32768, got d={self.d}, max_int={self.max_int}")

    @property
    def params(self) -> KrumParams:
        return KrumParams(self.n, self.f, self.m)

    @property
    def absent_distance(self) -> int:
        return absent_distance(self.params, self.d, self.max_int)

    @property
    def lookup_bound(self) -> int:
        return 1  # no lookups of its own: its inputs come from proven chunks

    @property
    def decomp_legs(self) -> int:
        return selection_legs(self.params, self.d, self.max_int)  # the same selection as a round's

    @property
    def label(self) -> str:
        return f"combine circuit n={self.n}"

    @property
    def largest_input(self) -> int:
        return triangle_size(self.n)

    @property
    def input_names(self) -> list[str]:
        return list(chunk_module.COMBINE_INPUT_NAMES)

    def input_bounds(self) -> list[tuple[int, int]]:
        """A Gram entry of updates within ``max_int`` is within ``d max_int^2``."""
        bound = self.d * self.max_int**2
        return [(-bound, bound), (0, 1)]

    def export(self, path: Path) -> Path:
        return chunk_module.export_combine_onnx(self.params, self.absent_distance, path)

    def calibration_input(self) -> dict:
        sample = _calibration_matrix(self.n, self.d, self.max_int)
        absent = np.arange(self.n) >= self.n - self.params.allowed_absent
        sample[absent] = 0
        return combine_input_json(chunk_gram(sample), absent)

    def description(self) -> dict:
        return circuit_description(f"combine-{SOURCE_DIGEST}", self)

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def run_args(self) -> ezkl.PyRunArgs:
        args = committed_integer_run_args(self.num_inner_cols, self.decomp_legs)
        # The chain sums the chunk proofs' public Gram outputs and passes the sum in.
        args.input_visibility = "public"
        return args


def combine_circuit_for(chunk: ChunkCircuit, d: int) -> CombineCircuit:
    """The combine circuit that closes rounds of ``d`` coordinates proven with ``chunk``."""
    return CombineCircuit(chunk.n, chunk.f, chunk.m, d, chunk.max_int, chunk.num_inner_cols)


def chunk_input_json(tagged: np.ndarray, claimed: np.ndarray, mask: np.ndarray) -> dict:
    rows = [row.tolist() for row in np.asarray(tagged, dtype=np.int64)]
    return {"input_data": [*rows, np.asarray(claimed, dtype=np.int64).tolist(), np.asarray(mask).astype(int).tolist()]}


def combine_inputs(gram: np.ndarray, absent: np.ndarray | None) -> dict:
    """The combine circuit's inputs as integers: the Gram triangle, then the absent flags."""
    n = np.asarray(gram).shape[0]
    flags = np.zeros(n, dtype=int) if absent is None else np.asarray(absent).astype(int)
    return {"input_data": [triangle(gram).tolist(), flags.tolist()]}


def combine_input_json(gram: np.ndarray, absent: np.ndarray | None) -> dict:
    """ezkl's input file of the combine circuit. The Gram entries go in as field elements: ezkl
    reads a plain number through the ONNX input's float32, which rounds integers above 2^24, and
    a Gram entry reaches d * max_int^2 (2^24 at d = 1,024, max_int = 128)."""
    gram_entries, flags = combine_inputs(gram, absent)["input_data"]
    return {"input_data": [felts(np.asarray(gram_entries, dtype=np.int64)), flags]}


@dataclass(frozen=True)
class ChunkOutcome:
    """What a verified chunk proof claims."""

    gram: list[int]
    mask: list[int]
    absent: list[int]
    check_error: int
    commitments: list[str]  # the n slices', then the claimed sum slice's, then the mask's


@dataclass(frozen=True)
class CombineOutcome:
    gram: list[int]  # its public Gram input
    absent: list[int]  # its public absent flags
    scores: list[int]
    mask: list[int]


def _felts(values: list[str]) -> list[int]:
    return [steps.felt_to_int(v) for v in values]


def _witness(prepared: PreparedCircuit, data: dict, folder: Path, integers: dict | None = None) -> dict:
    """Write ``data`` (ezkl's input file; ``integers``, the same inputs as integers, when it
    holds field elements) into the new ``folder`` and compute the witness."""
    folder.mkdir(parents=True, exist_ok=False)
    check = integers if integers is not None else data  # else ezkl hangs on an out-of-range value
    check_input_range(check, prepared.circuit.input_bounds(), prepared.circuit.input_names)
    write_json_atomic(folder / steps.INPUT, data)
    return steps.gen_witness(folder / steps.INPUT, prepared.compiled, folder / steps.WITNESS)


def prove_chunk(
    prepared: PreparedCircuit,
    tagged: np.ndarray,
    claimed: np.ndarray,
    mask: np.ndarray,
    folder: Path,
    stats: dict[str, StepStats] | None = None,
) -> ChunkOutcome:
    """Prove one chunk (``[n, C + 1]`` tagged slices, the claimed sum's ``[C]`` slice, the
    round's mask) into the new ``folder``, the proving step timed into ``stats``. A claimed
    slice that is not the selected slices' sum (``check_error != 0``) is refused before
    proving: its proof would not verify."""
    circuit = prepared.circuit
    witness = _witness(prepared, chunk_input_json(tagged, claimed, mask), folder)
    outputs = chunk_module.split_chunk_outputs(_felts(witness["outputs"][0]), circuit.n)
    reference = chunk_round(tagged, claimed, mask, circuit.m)
    if outputs["gram"] != reference.gram.tolist() or outputs["check_error"] != reference.check_error:
        raise ProofError("the chunk circuit's witness disagrees with the numpy reference; this is a bug")
    if outputs["check_error"] != 0:
        raise ProofError(
            "the claimed sum slice is not the sum of the selected slices, or a tag or the mask is wrong "
            "(check_error != 0): no valid chunk proof exists"
        )
    step = prepared.prove_in_child(
        f"proving chunk n={circuit.n} C={circuit.chunk} (logrows {prepared.logrows})", folder
    )
    if stats is not None:
        stats["prove"] = step
    (folder / steps.WITNESS).unlink()  # the proof holds what a verifier needs
    return verify_chunk(prepared, folder)


def verify_chunk(prepared: PreparedCircuit, folder: Path) -> ChunkOutcome:
    """Verify a chunk proof with ezkl and read what it claims; ProofError unless it verifies
    with ``check_error == 0``."""
    n = prepared.circuit.n
    steps.verify(folder / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)
    proof = json.loads((folder / steps.PROOF).read_text())
    outputs = chunk_module.split_chunk_outputs(_felts(proof["instances"][0]), n)
    if outputs["check_error"] != 0:
        raise ProofError("the chunk's claimed sum slice is not the sum of the selected slices (check_error != 0)")
    commitments = [c.hex() for c in proof_commitments(bytes(proof["proof"]), n + 2)]
    return ChunkOutcome(
        gram=outputs["gram"],
        mask=outputs["mask"],
        absent=outputs["absent"],
        check_error=outputs["check_error"],
        commitments=commitments,
    )


def prove_combine(
    prepared: PreparedCircuit,
    gram: np.ndarray,
    folder: Path,
    absent: np.ndarray | None = None,
    stats: dict[str, StepStats] | None = None,
) -> CombineOutcome:
    """Prove the scores and the mask of the total ``[n, n]`` Gram matrix into the new ``folder``,
    the proving step timed into ``stats``."""
    circuit = prepared.circuit
    witness = _witness(prepared, combine_input_json(gram, absent), folder, combine_inputs(gram, absent))
    outputs = chunk_module.split_combine_outputs(_felts(witness["outputs"][0]), circuit.n)
    reference = combine(gram, circuit.params, absent, circuit.absent_distance)
    if outputs["scores"] != reference.scores.tolist() or outputs["mask"] != reference.mask.astype(int).tolist():
        raise ProofError("the combine circuit's witness disagrees with the numpy reference; this is a bug")
    step = prepared.prove_in_child(f"proving combine n={circuit.n} (logrows {prepared.logrows})", folder)
    if stats is not None:
        stats["prove"] = step
    (folder / steps.WITNESS).unlink()  # the proof holds what a verifier needs
    return verify_combine(prepared, folder)


def verify_combine(prepared: PreparedCircuit, folder: Path) -> CombineOutcome:
    """Verify a combine proof with ezkl and read its public inputs and outputs."""
    circuit = prepared.circuit
    steps.verify(folder / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)
    # One instance column: the public inputs (Gram, absent flags), then the outputs.
    values = _felts(json.loads((folder / steps.PROOF).read_text())["instances"][0])
    t, n = triangle_size(circuit.n), circuit.n
    gram, absent = values[:t], values[t : t + n]
    outputs = chunk_module.split_combine_outputs(values[t + n :], n)
    if sorted(set(outputs["mask"])) not in ([1], [0, 1]) or sum(outputs["mask"]) != circuit.m:
        raise ProofError(f"the selection mask does not select exactly m={circuit.m} clients")
    return CombineOutcome(gram=gram, absent=absent, scores=outputs["scores"], mask=outputs["mask"])


def check_chunked_round(
    chunks: list[ChunkOutcome],
    combined: CombineOutcome,
    signed: list[list[str] | None],
    absent: list[int],
) -> None:
    """The checks that make verified chunk proofs and a verified combine proof one round, as a
    contract will make them: ``signed[i]`` is client ``i``'s signed list of chunk commitments
    (None for an absent slot) and ``absent`` the round's declared absent flags. Raises ProofError."""
    n = len(signed)
    if any(len(s) != len(chunks) for s in signed if s is not None):
        raise ProofError("a client signed another number of chunks than the round has")
    for k, chunk in enumerate(chunks):
        for i in range(n):
            if signed[i] is not None and chunk.commitments[i] != signed[i][k]:
                raise ProofError(f"chunk {k}: the commitment of client {i}'s slice is not the one it signed")
        if chunk.mask != combined.mask:
            raise ProofError(f"chunk {k} checked the sum under another mask than the combine proof's")
        if chunk.absent != list(absent):
            raise ProofError(f"chunk {k}'s absent slots are not the round's")
    if combined.absent != list(absent):
        raise ProofError("the combine proof's absent slots are not the round's")
    total = np.sum([c.gram for c in chunks], axis=0).tolist()
    if total != combined.gram:
        raise ProofError("the combine proof's Gram matrix is not the sum of the chunk proofs' partial Gram matrices")


def merkle_depth(count: int) -> int:
    """The levels of the chunk tree over ``count`` >= 1 leaves: log2(P), P the smallest power of
    two >= ``count`` (0 for one leaf); a path has that many siblings, a frontier that many words."""
    return (count - 1).bit_length()


def _node(left: bytes, right: bytes) -> bytes:
    return keccak(left + right)


def _tree(chunk_commitments: list[bytes]) -> list[list[bytes]]:
    """The chunk tree's levels, the leaves first: keccak256 of each 64-byte chunk commitment,
    zero leaves up to a power of two, each node keccak256(left || right) (ChunkMerkle.sol)."""
    if not chunk_commitments:
        raise InputError("a chunked commitment needs at least one chunk commitment")
    level = [keccak(c) for c in chunk_commitments]
    level += [bytes(32)] * ((1 << merkle_depth(len(level))) - len(level))
    levels = [level]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def chunk_root(chunk_commitments: list[bytes]) -> bytes:
    """The one 64-byte commitment of K chunk commitments: their Merkle root, then K as a uint256.
    A client signs it; the aggregate's is the same over the claimed-sum chunks. A tree, not a
    flat hash, so that one chunk is checked against it alone (chunk_path), and so that
    ChunkedRoundVerifier builds it one chunk proof at a time (frontier_after)."""
    return _tree(chunk_commitments)[-1][0] + len(chunk_commitments).to_bytes(32, "big")


def chunk_path(chunk_commitments: list[bytes], k: int) -> list[bytes]:
    """Chunk ``k``'s path: the siblings of its leaf, bottom-up (k's bit l says whether the
    level-l sibling is on the left, 1, or on the right, 0)."""
    if not 0 <= k < len(chunk_commitments):
        raise InputError(f"chunk {k} is not one of the {len(chunk_commitments)} chunks")
    return [level[(k >> height) ^ 1] for height, level in enumerate(_tree(chunk_commitments)[:-1])]


def path_root(leaf: bytes, index: int, path: list[bytes]) -> bytes:
    """The root leaf number ``index`` and its ``path`` lead to (ChunkMerkle.rootOf). Only a caller
    that also checks ``index`` < K knows the leaf is a chunk's: the padding leaves have paths too."""
    node = leaf
    for height, sibling in enumerate(path):
        node = _node(sibling, node) if index >> height & 1 else _node(node, sibling)
    return node


def frontier_after(frontier: tuple[bytes, ...], index: int, leaf: bytes) -> tuple[bytes, ...]:
    """A tree's frontier (word l: the last left node of level l, still waiting for its right
    sibling) once leaf number ``index`` is added (ChunkMerkle.append): how staging grows a slot's
    root one chunk proof at a time."""
    words, node = list(frontier), leaf
    for height in range(len(words)):
        if not index >> height & 1:  # a left child waits for its sibling
            words[height] = node
            break
        node = _node(words[height], node)  # a right child completes its parent
    return tuple(words)


def parts_commitment(parts: list, prepared: PreparedCircuit, chunked: bool) -> bytes:
    """The commitment of a vector given in parts: the KZG commitment of its one part, or with
    ``chunked`` the chunk root of its parts' commitments (a model or aggregate proven in chunks)."""
    commitments = [
        commit(np.asarray(part, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path) for part in parts
    ]
    return chunk_root(commitments) if chunked else commitments[0]


def update_chunk_commitments(update: np.ndarray, slot: int, prepared: PreparedCircuit) -> list[bytes]:
    """A client's K chunk commitments: each chunk of its quantized update (the last zero-padded)
    followed by its slot tag, committed with the chunk circuit's key, as the chunk proofs carry them."""
    circuit = prepared.circuit
    return [
        commit(np.append(part, slot_tag(slot)), prepared.vk, prepared.settings, prepared.srs.path)
        for part in split_vector(update, circuit.chunk)
    ]


def absent_slot_commitment(prepared: PreparedCircuit, d: int) -> bytes:
    """An absent slot's commitment in a round of ``d`` coordinates: the chunk root over the
    all-zero tagged chunk's commitment (tag 0), once per chunk."""
    circuit = prepared.circuit
    zero = commit(np.zeros(circuit.chunk + 1, dtype=np.int64), prepared.vk, prepared.settings, prepared.srs.path)
    return chunk_root([zero] * chunk_count(d, circuit.chunk))
