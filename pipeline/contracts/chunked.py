"""Chunked rounds on chain: stage a round's chunk proofs with its ChunkedRoundVerifier.

A chunked round goes on chain in two parts (verifier_contracts/src/interfaces/IChunkedRoundVerifier.sol):
the chunk proofs, in chunk order, a few per transaction (``stageChunks``), then the usual
``submitRound`` whose proof is the combine proof. Staging keeps one hash of its progress on
chain; the stager passes the progress itself back in, so :func:`progress_after` is the
off-chain twin of the contract's fold, and a stager that crashed resumes after the last chunk
the chain recorded. The fold grows each slot's Merkle root of chunk commitments
(prover.chunked.chunk_root) one leaf at a time, keeping the tree's frontier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak

from stakelearn.circuits.chunk import triangle_size
from stakelearn.errors import ProofError
from stakelearn.models.quantize import FIELD_MODULUS
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.prover.chunked import frontier_after, merkle_depth
from stakelearn.prover.evm import verify_arguments, vka_words
from stakelearn.prover.steps import PROOF

PROGRESS_TYPE = "(uint256,bytes32[],uint256,uint256,uint256[])"


@dataclass(frozen=True)
class Progress:
    """IChunkedRoundVerifier.Progress: what a staging session has folded in so far."""

    chunks: int
    # per slot (the n clients, then the aggregate), the Merkle frontier of its chunk commitments
    # (prover.chunked.frontier_after); the contract takes them one after the other, in one list
    frontiers: tuple[tuple[bytes, ...], ...]
    selected_mask: int
    absent_mask: int
    gram: tuple[int, ...]  # the running sum of the partial Gram matrices, in the field

    @classmethod
    def empty(cls, n: int, chunks: int) -> Progress:
        """Nothing staged yet of a round of ``n`` clients in ``chunks`` chunks."""
        frontier = (bytes(32),) * merkle_depth(chunks)
        return cls(0, (frontier,) * (n + 1), 0, 0, (0,) * triangle_size(n))

    def as_abi(self) -> tuple:
        words = [word for frontier in self.frontiers for word in frontier]
        return (self.chunks, words, self.selected_mask, self.absent_mask, list(self.gram))

    @property
    def digest(self) -> bytes:
        """keccak256(abi.encode(progress)), the hash the contract keeps."""
        return keccak(encode([PROGRESS_TYPE], [self.as_abi()]))


@dataclass(frozen=True)
class ChunkCall:
    """One chunk proof as ``stageChunks`` takes it."""

    proof: bytes
    instances: list[int]


def _bits(values: Sequence[int]) -> int:
    return sum(int(v) << i for i, v in enumerate(values))


def progress_after(progress: Progress, chunk: ChunkCall) -> Progress:
    """The contract's fold of one (valid) chunk proof into ``progress``: its n + 1 first
    commitments (the slots', then the aggregate's) are the next leaves of the slots' trees."""
    n, t, k = len(progress.frontiers) - 1, len(progress.gram), progress.chunks
    mask, absent = _bits(chunk.instances[t : t + n]), _bits(chunk.instances[t + n : t + 2 * n])
    piece = chunk.proof
    return replace(
        progress,
        chunks=k + 1,
        frontiers=tuple(
            frontier_after(frontier, k, keccak(piece[64 * i : 64 * (i + 1)]))
            for i, frontier in enumerate(progress.frontiers)
        ),
        selected_mask=mask,
        absent_mask=absent,
        gram=tuple((g + x) % FIELD_MODULUS for g, x in zip(progress.gram, chunk.instances[:t])),
    )


def chunk_calls(chunk_folders: Sequence[Path], vka: Path) -> list[ChunkCall]:
    calls = []
    for folder in chunk_folders:
        proof, instances, _ = verify_arguments(folder / PROOF, vka)
        calls.append(ChunkCall(proof, instances))
    return calls


def round_session(task_id: int, epoch: int) -> bytes:
    """The staging session an aggregator uses for one epoch of a task."""
    return keccak(encode(["uint256", "uint256"], [task_id, epoch]))


def resume_point(recorded: bytes, calls: Sequence[ChunkCall], n: int) -> tuple[int, Progress]:
    """Where staging resumes: after the chunks whose progress the chain recorded, else at 0."""
    progress = Progress.empty(n, len(calls))
    prefixes = [progress]
    for call in calls:
        progress = progress_after(progress, call)
        prefixes.append(progress)
    for done, prefix in enumerate(prefixes):
        if done and prefix.digest == recorded:
            return done, prefix
    return 0, prefixes[0]


def stage_chunks(
    chain: Chain,
    account,
    verifier,
    session: bytes,
    calls: Sequence[ChunkCall],
    chunk_vka: Path,
    per_transaction: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[int]:
    """Stage a round's chunk proofs with the ChunkedRoundVerifier contract ``verifier``, at most
    ``per_transaction`` per transaction, resuming after what the chain already recorded for
    ``account``'s ``session``; return the gas of each transaction sent. ``progress(done, total,
    gas)`` is told after each transaction."""
    n = verifier.functions.clients().call()
    if len(calls) != verifier.functions.CHUNKS().call():
        raise ProofError(f"the verifier takes {verifier.functions.CHUNKS().call()} chunk proofs, got {len(calls)}")
    sender = account if isinstance(account, str) else account.address  # an unlocked account, or a local key
    recorded = verifier.functions.progressHash(sender, session).call()
    done, state = resume_point(recorded, calls, n)
    words = vka_words(chunk_vka)
    gas = []
    while done < len(calls):
        batch = calls[done : done + max(1, per_transaction)]
        args = [(c.proof, c.instances) for c in batch]
        receipt = chain.execute(account, verifier, "stageChunks", session, state.as_abi(), args, words)
        for call in batch:
            state = progress_after(state, call)
        done += len(batch)
        gas.append(receipt["gasUsed"])
        if progress is not None:
            progress(done, len(calls), receipt["gasUsed"])
    return gas


CHUNKS_PER_TRANSACTION = 4  # a chunk proof costs about 2 M gas: four fit a 30 M block with room
