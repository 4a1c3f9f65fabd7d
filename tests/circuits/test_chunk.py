"""Chunked rounds: summing the chunks' partial Gram matrices and combining gives exactly the
round's scores and selection, and the torch modules compute what the numpy twins compute."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stakelearn.circuits.chunk import (
    chunk_gram,
    chunk_round,
    chunked_gram,
    combine,
    from_triangle,
    split_chunks,
    split_vector,
    tag_slices,
    triangle,
)
from stakelearn.circuits.chunk_module import ChunkRound, CombineRound, split_chunk_outputs, split_combine_outputs
from stakelearn.circuits.krum import KrumParams, absent_distance, krum_round
from stakelearn.errors import InputError

SHAPES = [(5, 1, 3), (6, 1, 2), (7, 2, 3), (9, 3, 6)]


@st.composite
def rounds(draw):
    n, f, m = draw(st.sampled_from(SHAPES))
    params = KrumParams(n, f, m)
    d = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 129, size=(n, d))
    if draw(st.booleans()):
        x[1] = x[0]  # equal updates: equal scores exercise the tie-break
    absent = np.arange(n) >= n - draw(st.integers(0, params.allowed_absent))
    x[absent] = 0
    return params, x, absent


@settings(max_examples=60, deadline=None)
@given(rounds(), st.integers(1, 48))
def test_chunks_combine_to_the_round(case, chunk):
    params, x, absent = case
    big = absent_distance(params, x.shape[1], 128)
    reference = krum_round(x, params, absent, big)
    gram = chunked_gram(x, chunk)
    assert np.array_equal(gram, x @ x.T)
    combined = combine(gram, params, absent, big)
    assert np.array_equal(combined.scores, reference.scores)
    assert np.array_equal(combined.mask, reference.mask)
    # Each chunk's sum check holds under the combined mask, and the slices make the whole sum.
    mask = combined.mask.astype(int)
    claimed = split_vector(reference.total, chunk)
    for slices, part in zip(split_chunks(x, chunk), claimed):
        out = chunk_round(tag_slices(slices, absent), part, mask, params.m)
        assert out.check_error == 0
        assert out.absent.tolist() == absent.astype(int).tolist()
    assert np.array_equal(np.concatenate(claimed)[: x.shape[1]], reference.total)


def test_triangle_round_trips():
    g = chunk_gram(np.random.default_rng(1).integers(-9, 10, size=(4, 6)))
    assert triangle(g).shape == (10,)
    assert np.array_equal(from_triangle(triangle(g), 4), g)
    with pytest.raises(InputError):
        from_triangle(triangle(g), 5)


def test_last_chunk_is_zero_padded():
    x = np.arange(10).reshape(2, 5)
    parts = split_chunks(x, 3)
    assert [p.shape for p in parts] == [(2, 3), (2, 3)]
    assert parts[1].tolist() == [[3, 4, 0], [8, 9, 0]]


def test_chunk_round_reports_a_wrong_sum_a_wrong_tag_and_a_bad_mask():
    x = np.random.default_rng(2).integers(-128, 129, size=(5, 8))
    mask = np.array([1, 1, 0, 1, 0])
    total = (mask[:, None] * x).sum(axis=0)
    tagged = tag_slices(x)
    assert chunk_round(tagged, total, mask, 3).check_error == 0
    assert chunk_round(tagged, total + np.eye(8, dtype=int)[2], mask, 3).check_error == 1
    copied = tagged.copy()
    copied[0] = tagged[1]  # client 1's chunk (tag 2) in slot 0
    assert chunk_round(copied, (mask[:, None] * copied[:, :-1]).sum(axis=0), mask, 3).check_error == 4
    assert chunk_round(tagged, total, np.array([1, 1, 0, 1, 1]), 3).check_error > 0  # 4 selected
    assert chunk_round(tagged, 2 * x[0], np.array([2, 0, 0, 1, 0]), 3).check_error > 0  # not bits


def _as_torch(rows) -> list[torch.Tensor]:
    return [torch.tensor(np.asarray(r), dtype=torch.float64) for r in rows]


@pytest.mark.parametrize("n, f, m", SHAPES)
@pytest.mark.parametrize("gone", [0, 1])
def test_torch_modules_match_the_twins(n, f, m, gone):
    params = KrumParams(n, f, m)
    d, chunk = 13, 5
    x = np.random.default_rng(n).integers(-128, 129, size=(n, d))
    absent = np.arange(n) >= n - min(gone, params.allowed_absent)
    x[absent] = 0
    big = absent_distance(params, d, 128)
    reference = krum_round(x, params, absent, big)
    mask = reference.mask.astype(int)
    module = ChunkRound(n, m, 128).double()
    for slices, part in zip(split_chunks(x, chunk), split_vector(reference.total, chunk)):
        tagged = tag_slices(slices, absent)
        out = split_chunk_outputs(module(*_as_torch([*tagged, part, mask])).numpy().astype(np.int64).tolist(), n)
        twin = chunk_round(tagged, part, mask, m)
        assert out["gram"] == twin.gram.tolist()
        assert out["mask"] == mask.tolist()
        assert out["absent"] == twin.absent.tolist() == absent.astype(int).tolist()
        assert out["check_error"] == 0
    combined = CombineRound(params, big).double()(*_as_torch([triangle(x @ x.T), absent.astype(int)]))
    out = split_combine_outputs(combined.numpy().astype(np.int64).tolist(), n)
    assert out["scores"] == reference.scores.tolist()
    assert out["mask"] == mask.tolist()
