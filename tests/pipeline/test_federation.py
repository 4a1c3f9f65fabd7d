"""Attacks and the flag rule replayed off chain."""

import numpy as np
import pytest

from stakelearn.circuits.krum import KrumParams
from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.federation.attacks import ATTACKS, AttackView, alie_z, get_attack, task_aggregator
from stakelearn.pipeline.federation.rules import flagged, reference_score
from stakelearn.pipeline.federation.task import MLP_ACCURACY_BATCH, MLP_CHUNK, model_options, next_global

FIXED_POINT = FixedPoint(scale_bits=9, clip=2.0)


def view(seed=0, coalition=None, white_box=True, honest=None):
    rng = np.random.default_rng(seed)
    honest = 0.1 + np.random.default_rng(0).normal(0, 0.01, size=(6, 32)) if honest is None else honest
    # the task's round as the attackers simulate it: n=8, f=2, m=6, from a zero global model
    aggregate = task_aggregator(KrumParams(8, 2, 6), FIXED_POINT, np.zeros(32)) if white_box else None
    coalition = {} if coalition is None else coalition
    return AttackView(np.full(32, 0.1), honest, 8, 2, rng, aggregate, coalition)  # own: a typical honest update


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


def test_mimic_copies_the_first_honest_client_up_to_jitter():
    v = view()
    assert np.abs(ATTACKS["mimic"].craft(v) - v.honest[0]).max() < 0.05


def test_optimal_alie_is_searched_once_per_coalition_on_byzfls_line():
    coalition = {}
    first, second = (ATTACKS["alie_opt"].craft(view(seed, coalition)) for seed in (1, 2))
    assert list(coalition) == ["alie_opt"] and 0 < np.abs(first - second).max() < 0.05  # one search, two jitters
    honest = view().honest
    # ByzFL's ALIE: the honest mean plus tau coordinate-wise standard deviations (ddof 1)
    tau = (coalition["alie_opt"] - honest.mean(axis=0)) / honest.std(axis=0, ddof=1)
    assert np.allclose(tau, tau[0])


def test_task_aggregator_without_byzantine_clients_is_the_quantized_mean():
    updates = np.random.default_rng(3).normal(0, 0.1, size=(5, 16))
    aggregate = task_aggregator(KrumParams(5, 0, 5), FIXED_POINT, np.zeros(16))
    assert np.abs(aggregate(updates) - updates.mean(axis=0)).max() <= FIXED_POINT.max_error


@pytest.mark.parametrize("name", ["alie_opt", "ipm_opt"])
def test_white_box_attacks_need_the_tasks_rule(name):
    with pytest.raises(InputError, match=f"the {name} attack needs the task's aggregation rule"):
        ATTACKS[name].craft(view(white_box=False))


@pytest.mark.parametrize("name", ["alie", "ipm", "alie_opt", "ipm_opt", "mimic"])
def test_crafted_attacks_refuse_a_lone_client(name):
    with pytest.raises(InputError, match=f"the {name} attack needs the honest clients' updates"):
        ATTACKS[name].craft(view(honest=np.empty((0, 32))))


def test_flagged_compares_with_the_reference_score():
    scores = np.array([10, 11, 12, 25, 80])
    # f = 1: the reference is the (n - f)-th smallest, 25; f = 2: 12
    assert reference_score(scores, 1) == 25 and reference_score(scores, 2) == 12
    assert flagged(scores, 30_000, 1).tolist() == [False, False, False, False, True]
    assert flagged(scores, 20_000, 2).tolist() == [False, False, False, True, True]
    assert not flagged(scores, 10_000, 0).any()  # f = 0: the reference is the largest score
    # an absent slot's (huge) score neither counts towards the reference nor is flagged
    absent = np.array([False, False, False, False, True])
    with_absent = np.array([10, 11, 12, 25, 10**30])
    assert reference_score(with_absent, 1, absent) == 12
    assert flagged(with_absent, 20_000, 1, absent).tolist() == [False] * 3 + [True, False]


def test_next_global_is_the_mean_of_the_selected_models():
    fixed_point = FixedPoint(scale_bits=2, clip=4.0)
    assert next_global(np.array([8, -4]), 2, fixed_point).tolist() == [1.0, -0.5]


def test_model_options_prove_softmax_in_one_proof_and_the_mlp_in_chunks():
    assert model_options("softmax") == {"hidden": 0, "chunk": 0, "accuracy_batch": 0}
    assert model_options("softmax", 16, 8) == {"hidden": 0, "chunk": 16, "accuracy_batch": 8}
    mlp = model_options("mlp")
    assert mlp["hidden"] == 128 and (mlp["chunk"], mlp["accuracy_batch"]) == (MLP_CHUNK, MLP_ACCURACY_BATCH)
    assert model_options("mlp", 0, None) == mlp  # 0 or None: the model's default
    with pytest.raises(InputError, match="unknown model"):
        model_options("cnn")
