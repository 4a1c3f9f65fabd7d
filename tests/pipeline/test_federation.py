"""Attacks, the flag rule and the slashing rule replayed off chain."""

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.federation.attacks import ATTACKS, AttackView, alie_z, get_attack
from stakelearn.pipeline.federation.rules import SlashingPolicy, flagged, slashed
from stakelearn.pipeline.federation.task import next_global


def view(seed=0):
    rng = np.random.default_rng(seed)
    honest = 0.1 + rng.normal(0, 0.01, size=(6, 32))
    return AttackView(own=honest[0].copy(), honest=honest, clients=8, attackers=2, rng=rng)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_return_an_update_of_the_same_shape(name):
    update = ATTACKS[name].craft(view())
    assert update.shape == (32,) and np.all(np.isfinite(update))


def test_sign_flip_and_ipm_point_against_the_honest_mean():
    mean = view().honest.mean(axis=0)
    assert ATTACKS["sign_flip"].craft(view()) @ mean < 0
    assert ATTACKS["ipm"].craft(view()) @ mean < 0


def test_alie_stays_within_a_standard_deviation_of_the_mean():
    v = view()
    shift = (v.honest.mean(axis=0) - ATTACKS["alie"].craft(v)) / v.honest.std(axis=0)
    assert 0 < np.median(shift) < 1.5
    assert alie_z(8, 2) == pytest.approx(0.3186, abs=1e-3)  # s = 8/2+1-2 = 3; Phi^-1(5/8)


def test_get_attack_rejects_unknown_names():
    with pytest.raises(InputError, match="unknown attack 'poison'; choose one of: sign_flip"):
        get_attack("poison")


def test_flagged_needs_an_outlier_score():
    scores = np.array([10, 11, 12, 25, 40])
    selected = np.array([True, True, True, False, False])
    assert flagged(scores, selected, 30_000).tolist() == [False, False, False, False, True]
    assert flagged(scores, selected, 10_000).tolist() == [False, False, False, True, True]


def test_next_global_is_the_mean_of_the_selected_models():
    fixed_point = FixedPoint(scale_bits=2, clip=4.0)
    assert next_global(np.array([8, -4]), 2, fixed_point).tolist() == [1.0, -0.5]


def test_slashed_follows_the_contract_rule():
    flags = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [1, 1]], dtype=bool)
    marks = slashed(flags, SlashingPolicy(threshold=2, window=3))
    # client 0: epochs 1 and 3 (2 of the last 3) -> slashed at 3, window restarts, 4 and 5 -> slashed at 5
    assert marks[:, 0].tolist() == [False, False, True, False, True]
    assert marks[:, 1].tolist() == [False, False, False, True, False]
