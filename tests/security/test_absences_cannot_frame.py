"""Finding 1: choosing who is absent let an aggregator with f colluders frame an honest client or
take the selection. The old cap, min(f, n - m - f), left only p = n - a <= 2f clients present in
shapes such as n = 9, f = 3, m = 3: there three identical colluders far from the honest clients
outscore them and are the whole selection. The cap is now min(f, n - m - f, n - 2f - 3), so that
at least 2f + 3 clients are present (Krum's guarantee) and at least m + f, in every shape
createTask accepts (n > 2f + 2, m <= n - f); MPSRollup.allowedAbsent and KrumParams agree."""

import itertools

import numpy as np
import pytest

from stakelearn.circuits.krum import KrumParams, distance_scores, krum_round, multikrum_select, pairwise_sq_distances
from stakelearn.errors import InputError
from stakelearn.pipeline.federation.rules import PenaltyPolicy, flagged


def shapes(largest: int):
    """Every (n, f, m) createTask accepts up to ``largest`` clients."""
    for n in range(3, largest + 1):
        for f in range(0, (n - 3) // 2 + 1):
            for m in range(1, n - f + 1):
                yield n, f, m


def test_present_clients_keep_krums_guarantee_in_every_shape():
    for n, f, m in shapes(64):
        allowed = KrumParams(n=n, f=f, m=m).allowed_absent
        assert allowed >= 0
        assert n - allowed >= 2 * f + 3 and n - allowed >= m + f, (n, f, m)


def test_the_contract_allows_the_same_absences(world):
    allowed = world.protocol.tasks.functions.allowedAbsent
    for n, f, m in shapes(16):
        assert allowed(n, f, m).call() == KrumParams(n=n, f=f, m=m).allowed_absent, (n, f, m)


def test_the_reviewed_shape_leaves_nobody_absent():
    params = KrumParams(n=9, f=3, m=3)
    assert params.allowed_absent == 0  # was 3
    updates = np.zeros((9, 4), dtype=np.int64)
    with pytest.raises(InputError, match="at most"):
        krum_round(updates, params, absent=np.arange(9) < 1, absent_distance=1 << 40)


def round_with(updates: np.ndarray, absent: np.ndarray, params: KrumParams):
    """Raw scores and selection with ``absent`` slots raised, whatever the cap (to replay the old one)."""
    distances = pairwise_sq_distances(updates)
    far = 1 << int(distances.max() * updates.shape[0]).bit_length()
    scores = distance_scores(distances, params.f, absent, far)
    return scores, multikrum_select(scores, params.m)


FAR = 4  # colluders this many honest spreads from the honest mean must never be selected


def adversaries(honest: np.ndarray, f: int, rng):
    """The colluders' vectors and whether they are far: identical but for a quantum of noise, at
    growing distances (in honest spreads) from the honest mean, on one honest update, and on the
    mean of two."""
    spread = np.sqrt(((honest - honest.mean(axis=0)) ** 2).sum(axis=1).mean())
    direction = rng.normal(size=honest.shape[1])
    direction /= np.linalg.norm(direction)
    points = [(honest.mean(axis=0) + r * spread * direction, r >= FAR) for r in (0.0, 0.5, 1.0, 2.0, 4.0, 16.0)]
    for point, far in [*points, (honest[0], False), ((honest[0] + honest[1]) / 2, False)]:
        yield np.rint(point + rng.integers(-1, 2, size=(f, honest.shape[1]))), far


def absences(honest: np.ndarray, colluders: np.ndarray, count: int):
    """Which honest clients the aggregator declares absent: those nearest the colluders, the
    farthest, and the first ones."""
    target = colluders.mean(axis=0) if len(colluders) else honest.mean(axis=0)
    distance = ((honest - target) ** 2).sum(axis=1)
    order = np.argsort(distance)
    return order[:count], order[::-1][:count], np.arange(count)


def frames(n: int, f: int, m: int, allowed: int, seed: int) -> list[str]:
    """The search: every strategy and absence choice above on IID honest updates; what it finds."""
    rng = np.random.default_rng(seed)
    honest = rng.normal(0, 30, size=(n - f, 32))
    params, ratio, found = KrumParams(n=n, f=f, m=m), PenaltyPolicy().outlier_bps, []
    for colluders, far in adversaries(honest, f, rng) if f else [(np.zeros((0, honest.shape[1])), False)]:
        for gone in absences(honest, colluders, allowed):
            updates = np.rint(np.vstack([honest, colluders])).astype(np.int64)
            absent = np.isin(np.arange(n), gone)
            scores, mask = round_with(updates, absent, params)
            honest_slots = np.arange(n - f)
            if flagged(scores, ratio, f, absent)[honest_slots].any():
                found.append(f"honest flagged at n={n}, f={f}, m={m}")
            if far and mask[n - f :].any():
                found.append(f"a far colluder selected at n={n}, f={f}, m={m}")
    return found


def test_the_old_cap_let_far_colluders_take_the_selection():
    """The search has teeth: with three of nine absent (the old cap), three far colluders are
    the whole selection."""
    assert any("far colluder" in line for line in frames(9, 3, 3, allowed=3, seed=0))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_framing_search_finds_nothing_in_any_shape(seed):
    found = list(
        itertools.chain.from_iterable(
            frames(n, f, m, KrumParams(n=n, f=f, m=m).allowed_absent, seed) for n, f, m in shapes(16)
        )
    )
    assert found == []
