"""Chunked Multi-Krum rounds: the numpy reference of the chunk and combine circuits.

One round proof over all ``d`` coordinates needs memory in proportion to ``d``. Krum only needs
the updates' Gram matrix ``G = X X^T``, and a Gram matrix is a sum over coordinates, so the
coordinates split into chunks of ``C``:
- a *chunk* proof per chunk ``k`` takes the ``n`` clients' slices ``X[:, kC:(k+1)C]`` (each
  with its slot tag, each committed on its own) and the claimed sum's slice, and outputs the
  partial Gram matrix ``X_k X_k^T``; under the public selection mask it checks that the sum
  slice is the sum of the selected slices;
- one *combine* proof takes ``G = sum_k X_k X_k^T`` and outputs the Krum scores and the
  Multi-Krum mask, exactly as :func:`stakelearn.circuits.krum.krum_round` computes them.
The mask a chunk proof checks the sum under is the mask the combine proof outputs: the chain
compares them (and that the combine's Gram is the sum of the chunks'), see docs/chunked-rounds.md.

A Gram matrix is symmetric, so circuits carry its ``n(n+1)/2`` upper-triangle entries, row by
row (:func:`triangle`, :func:`from_triangle`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stakelearn.circuits.krum import (
    KrumParams,
    distance_scores,
    gram_distances,
    multikrum_select,
    slot_tag,
)
from stakelearn.errors import InputError


def chunk_count(d: int, chunk: int) -> int:
    """How many chunks of ``chunk`` coordinates hold ``d``."""
    if chunk < 1:
        raise InputError(f"chunk size must be >= 1, got {chunk}")
    return -(-d // chunk)


def split_chunks(updates: np.ndarray, chunk: int) -> list[np.ndarray]:
    """The ``[n, chunk]`` slices of an ``[n, d]`` matrix; the last is zero-padded (zeros change
    neither a Gram matrix nor a sum, so every chunk proof has one shape)."""
    x = np.asarray(updates, dtype=np.int64)
    count = chunk_count(x.shape[1], chunk)
    padded = np.zeros((x.shape[0], count * chunk), dtype=np.int64)
    padded[:, : x.shape[1]] = x
    return [padded[:, k * chunk : (k + 1) * chunk] for k in range(count)]


def split_vector(vector: np.ndarray, chunk: int) -> list[np.ndarray]:
    """The slices of one vector (the claimed sum), zero-padded like :func:`split_chunks`."""
    return [row[0] for row in split_chunks(np.asarray(vector)[None, :], chunk)]


def triangle_pairs(n: int) -> list[tuple[int, int]]:
    """The ``(i, j)``, ``i <= j``, of the upper triangle, row by row: the circuits' Gram order."""
    return [(i, j) for i in range(n) for j in range(i, n)]


def triangle(gram: np.ndarray) -> np.ndarray:
    """The ``n(n+1)/2`` upper-triangle entries of a symmetric ``[n, n]`` matrix."""
    gram = np.asarray(gram, dtype=np.int64)
    return np.array([gram[i, j] for i, j in triangle_pairs(gram.shape[0])], dtype=np.int64)


def triangle_size(n: int) -> int:
    return n * (n + 1) // 2


def from_triangle(entries: np.ndarray, n: int) -> np.ndarray:
    """The symmetric ``[n, n]`` matrix of :func:`triangle`'s entries."""
    entries = np.asarray(entries, dtype=np.int64)
    if entries.shape != (triangle_size(n),):
        raise InputError(f"expected {triangle_size(n)} Gram entries for n={n}, got shape {entries.shape}")
    gram = np.zeros((n, n), dtype=np.int64)
    for value, (i, j) in zip(entries, triangle_pairs(n)):
        gram[i, j] = gram[j, i] = value
    return gram


def chunk_gram(slices: np.ndarray) -> np.ndarray:
    """The partial Gram matrix ``[n, n]`` of one chunk's ``[n, C]`` slices (tags excluded)."""
    x = np.asarray(slices, dtype=np.int64)
    return x @ x.T


def tag_slices(slices: np.ndarray, absent: np.ndarray | None = None) -> np.ndarray:
    """The chunk circuit's ``[n, C + 1]`` slice inputs: each slice followed by its slot tag, as
    whole updates are (:func:`stakelearn.circuits.krum.tagged_inputs`), and the all-zero
    vector (tag 0) in an absent slot. Each chunk carries the tag, so every chunk commitment a
    client signs belongs to its slot alone."""
    x = np.asarray(slices, dtype=np.int64)
    tags = np.array([slot_tag(i) for i in range(x.shape[0])], dtype=np.int64)
    rows = np.concatenate([x, tags[:, None]], axis=1)
    if absent is not None:
        rows[np.asarray(absent, dtype=bool)] = 0
    return rows


@dataclass(frozen=True)
class ChunkOutputs:
    """What a chunk circuit outputs, by name."""

    gram: np.ndarray  # the n(n+1)/2 upper-triangle entries of the partial Gram matrix
    mask: np.ndarray  # the selection mask it checked the sum under (an input, echoed public)
    absent: np.ndarray  # 1 for a slot whose tag is 0
    check_error: int


def chunk_round(tagged: np.ndarray, claimed: np.ndarray, mask: np.ndarray, m: int) -> ChunkOutputs:
    """The chunk circuit on ``[n, C + 1]`` tagged slices, the claimed sum slice ``[C]`` and the
    selection mask: ``check_error`` is 0 iff the claimed slice is the sum of the selected
    slices, every tag is its slot's or 0, and the mask is ``m`` bits."""
    t = np.asarray(tagged, dtype=np.int64)
    slices, tags = t[:, :-1], t[:, -1]
    bits = np.asarray(mask, dtype=np.int64)
    total = (bits[:, None] * slices).sum(axis=0)
    slots = np.array([slot_tag(i) for i in range(t.shape[0])], dtype=np.int64)
    error = (
        int(((total - np.asarray(claimed, dtype=np.int64)) ** 2).sum())
        + int(((tags * (tags - slots)) ** 2).sum())
        + int(((bits * (bits - 1)) ** 2).sum())
        + int((bits.sum() - m) ** 2)
    )
    return ChunkOutputs(
        gram=triangle(chunk_gram(slices)),
        mask=bits,
        absent=(tags == 0).astype(np.int64),
        check_error=error,
    )


@dataclass(frozen=True)
class Combined:
    """What the combine circuit outputs."""

    scores: np.ndarray
    mask: np.ndarray


def combine(
    gram: np.ndarray, params: KrumParams, absent: np.ndarray | None = None, absent_distance: int = 0
) -> Combined:
    """Krum scores and the Multi-Krum mask from the total ``[n, n]`` Gram matrix: the same
    numbers :func:`stakelearn.circuits.krum.krum_round` computes from the updates."""
    gram = np.asarray(gram, dtype=np.int64)
    if gram.shape != (params.n, params.n):
        raise InputError(f"expected an [{params.n}, {params.n}] Gram matrix, got shape {gram.shape}")
    if absent is not None and np.count_nonzero(absent) > params.allowed_absent:
        raise InputError(
            f"{np.count_nonzero(absent)} clients are absent; this round tolerates at most "
            f"min(f, n - m - f, n - 2f - 3) = {params.allowed_absent}"
        )
    scores = distance_scores(gram_distances(gram), params.f, absent, absent_distance)
    return Combined(scores=scores, mask=multikrum_select(scores, params.m))


def chunked_gram(updates: np.ndarray, chunk: int) -> np.ndarray:
    """The total Gram matrix as the chain sums it: the partial Gram matrices of every chunk."""
    return sum(chunk_gram(s) for s in split_chunks(updates, chunk))
