"""A small chunked round for the parallel provers' tests: the chunk circuit of test_chunked (its
keys are reused), the combine circuit of the round's d, and the checks that make it one round."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stakelearn.circuits.chunk import chunked_gram
from stakelearn.circuits.krum import krum_round
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit, check_chunked_round, prove_combine
from stakelearn.prover.circuit import PreparedCircuit, prepare
from stakelearn.prover.commitments import commit
from stakelearn.prover.parallel import ChunkJob, chunk_jobs

N, F, M, C, MAX_INT = 5, 1, 3, 8, 128


def round_updates(d: int, seed: int = 11) -> np.ndarray:
    """Four similar updates and one far away (client 4), integers within the clip."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-40, 41, size=d)
    updates = base + rng.integers(-6, 7, size=(N, d))
    updates[4] = -2 * base
    return np.clip(updates, -MAX_INT, MAX_INT)


def chunk_circuit() -> PreparedCircuit:
    return prepare(ChunkCircuit(N, F, M, C, MAX_INT, num_inner_cols=4))


def round_jobs(updates: np.ndarray) -> list[ChunkJob]:
    """The chunk jobs of the round Multi-Krum makes of ``updates``."""
    circuit = CombineCircuit(N, F, M, updates.shape[1], MAX_INT, num_inner_cols=4)
    reference = krum_round(updates, circuit.params, None, circuit.absent_distance)
    return chunk_jobs(updates, reference.total, reference.mask, C)


def check_round(chunk: PreparedCircuit, jobs: list[ChunkJob], outcomes, updates: np.ndarray, folder: Path) -> None:
    """Prove the combine and make the round's checks, against the commitments each client
    computes itself from its own tagged slices."""
    combine = prepare(CombineCircuit(N, F, M, updates.shape[1], MAX_INT, num_inner_cols=4))
    combined = prove_combine(combine, chunked_gram(updates, C), folder / "combine")
    signed = [[commit(job.tagged[i], chunk.vk, chunk.settings, chunk.srs.path).hex() for job in jobs] for i in range(N)]
    check_chunked_round(outcomes, combined, signed, [0] * N)
    assert combined.mask == jobs[0].mask.tolist()
