"""NNM before Multi-Krum, the numpy reference: equal to ByzFL's NNM and Multi-Krum (PyPI
``byzfl``), and absent slots never mixed into a present one.

ByzFL's Multi-Krum scores with the ``n - f - 1`` nearest others and keeps ``n - f`` updates; ours
(Blanchard et al., as Flower) scores with ``n - f - 2`` and keeps ``m``. ByzFL's ``MultiKrum(f + 1)``
is therefore ours with ``m = n - f - 1``; NNM is the same in both (``n - f`` nearest, itself included).
Random integers in a wide range make ties (which ByzFL breaks arbitrarily) practically impossible.
"""

import numpy as np
import pytest

from stakelearn.circuits.krum import KrumParams, absent_distance, krum_round, nearest_neighbours, pairwise_sq_distances
from stakelearn.pipeline.federation.byzfl_parts import byzfl_parts

SHAPES = [(7, 1, 8), (10, 2, 30), (16, 3, 64), (16, 6, 64)]


def random_updates(n: int, d: int, seed: int) -> np.ndarray:
    updates = np.random.default_rng(seed).integers(-1024, 1025, size=(n, d))
    updates[-1] *= 3  # an outlier, so that selections differ from "everyone"
    return updates


@pytest.mark.parametrize("n, f, d", SHAPES)
@pytest.mark.parametrize("seed", range(5))
def test_nnm_mixing_equals_byzfl(n, f, d, seed):
    x = random_updates(n, d, seed)
    mixing = nearest_neighbours(pairwise_sq_distances(x), n - f)
    assert (mixing.sum(axis=1) == n - f).all() and (np.diag(mixing) == 1).all()
    expected = byzfl_parts().aggregators.NNM(f=f)(x.astype(np.float64))
    np.testing.assert_allclose(mixing @ x / (n - f), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n, f, d", SHAPES)
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rule", ["multikrum", "nnm-multikrum"])
def test_round_equals_byzfl(n, f, d, seed, rule):
    x = random_updates(n, d, seed)
    params = KrumParams(n, f, n - f - 1, rule)
    result = krum_round(x, params)
    assert result.weights.sum() == params.weight
    np.testing.assert_array_equal(result.total, result.weights @ x)  # exact integers
    byzfl = byzfl_parts().aggregators
    vectors = byzfl.NNM(f=f)(x.astype(np.float64)) if params.mixes else x.astype(np.float64)
    expected = byzfl.MultiKrum(f=f + 1)(vectors)
    np.testing.assert_allclose(result.total / params.weight, expected, rtol=0, atol=1e-9)


def test_mixing_pulls_an_outlier_in_but_flags_stay_on_raw_scores():
    """Mixing averages an outlier with its n - f nearest, the honest: its raw score stays far out."""
    x = random_updates(16, 64, 0) // 8
    x[15] = 40 * x[0]
    plain, mixed = (krum_round(x, KrumParams(16, 3, 13, rule)) for rule in ("multikrum", "nnm-multikrum"))
    np.testing.assert_array_equal(plain.scores, mixed.scores)
    assert not plain.mask[15]
    assert mixed.weights[15] <= 13  # at most once per selected mixed update, out of 13 * 13


@pytest.mark.parametrize("seed", range(5))
def test_absent_slots_are_never_mixed_in_nor_selected(seed):
    params = KrumParams(16, 3, 10, "nnm-multikrum")
    x = random_updates(16, 32, seed)
    absent = np.zeros(16, dtype=bool)
    absent[[1, 5, 9]] = True
    x[absent] = 0
    result = krum_round(x, params, absent, absent_distance(params, 32, 3 * 1024))
    assert not result.weights[absent].any() and not result.mask[absent].any()
    assert result.weights.sum() == params.weight
    # 13 present = n - f: every present update mixes all present ones, so each of the 10
    # selected mixed updates gives each present update weight 1
    assert (result.weights[~absent] == 10).all()
