"""The robustness experiment on a small grid: Krum catches a plain attack, the clean run slashes
nobody, the sweep replays the slashing rule, and the command writes its three files."""

import json
from pathlib import Path

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.pipeline.apps.robustness import (
    CLEAN,
    choose_outlier_bps,
    epochs_to_slash,
    movement,
    replay,
    run_robustness,
    shortfall_ratios,
    simulate,
    slash_ratios,
)
from stakelearn.pipeline.federation.rules import SlashingPolicy
from stakelearn.pipeline.federation.task import TaskConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "robustness.json"
ROW_FIELDS = {
    "split",
    "alpha",
    "aggregation",
    "f",
    "attack",
    "attackers",
    "final_accuracy",
    "clean_accuracy",
    "drop_points",
    "honest_slashed",
    "attackers_slashed_share",
    "epochs_to_slash",
    "attacker_weight",
    "honest_slash_ratio",
    "attacker_slash_ratio",
    "per_seed",
}


def test_simulate_sign_flip_slashes_every_attacker_and_no_honest_client():
    config = TaskConfig(clients=16, byzantine=3, attackers=3, attack="sign_flip", epochs=3, split="iid")
    result = simulate(config, SlashingPolicy())
    assert result.attackers == [13, 14, 15]
    assert result.scores.shape == result.flags.shape == result.slashes.shape == (3, 16)
    assert len(result.accuracy) == 3 and result.final_accuracy > 0.5
    assert np.flatnonzero(result.slashes.any(axis=0)).tolist() == [13, 14, 15]
    assert not result.weights[:, 13:].any()  # Multi-Krum kept them out of the model too


def test_simulate_clean_nnm_run_slashes_nobody():
    config = TaskConfig(clients=16, byzantine=3, attackers=0, epochs=3, split="dirichlet", aggregation="nnm-multikrum")
    result = simulate(config, SlashingPolicy())
    assert result.attackers == [] and not result.slashes.any()
    assert (result.weights.sum(axis=1) == config.krum.weight).all()  # m (n - f) with mixing


def test_free_riders_move_a_jitter_away_from_the_global_model():
    config = TaskConfig(clients=16, byzantine=3, attackers=3, attack="free_rider", epochs=2, split="iid")
    result = simulate(config, SlashingPolicy())
    assert result.movement.shape == (2, 16)
    riders, honest = result.movement[:, 13:], result.movement[:, :13]
    assert 0 < riders.max() < honest.min() / 10  # not the global model itself, and far closer to it


def test_movement_is_the_squared_distance_to_the_start():
    start = np.array([1, -2, 3])
    assert movement(np.array([[1, -2, 3], [2, 0, 3]]), start).tolist() == [0, 5]


def test_shortfall_ratios_compare_the_f_plus_first_smallest_with_each_value():
    # f = 1: the reference is the 2nd smallest, 40; a value of 0 counts as 1
    ratios = shortfall_ratios(np.array([[0, 40, 80, 50]]), 1)
    assert ratios.tolist() == [[40.0, 1.0, 0.5, 0.8]]


def test_replay_flags_and_slashes_from_the_scores():
    # f = 1: the reference is the 3rd smallest score, 12 each epoch
    scores = np.array([[10, 11, 12, 40], [10, 11, 12, 40], [10, 11, 50, 12]])
    flags, slashes = replay(scores, SlashingPolicy(outlier_bps=30_000), 1)
    assert flags[:, 3].tolist() == [True, True, False] and flags[:, 2].tolist() == [False, False, True]
    assert slashes[:, 3].tolist() == [False, True, False] and not slashes[:, 2].any()
    assert epochs_to_slash(slashes, [3]) == 2 and epochs_to_slash(slashes, [2, 3]) is None


def test_slash_ratios_is_the_second_largest_ratio_of_the_worst_window():
    ratios = np.array([[5.0, 1.0], [4.0, 9.0], [1.0, 1.0], [1.0, 3.0]])
    # client 0: epochs 1-2 give 4; client 1: epochs 2-4 give 3 (9 and 3 in one window)
    assert slash_ratios(ratios, SlashingPolicy(threshold=2, window=3)).tolist() == [4.0, 3.0]


def test_choose_outlier_bps_takes_the_margin_that_keeps_the_smallest_safe_candidates_detection():
    def row(bps, honest, **epochs):
        return {"outlier_bps": bps, "honest_slashed": honest, "iid_epochs_to_slash": epochs}

    swept = [
        row(2, 3, noise=2, sign_flip=2),
        row(3, 0, noise=2, sign_flip=3),  # the smallest safe
        row(4, 0, noise=2, sign_flip=3),  # still both in time: margin
        row(5, 0, noise=2, sign_flip=5),  # sign flip too late
        row(6, 0, noise=2, sign_flip=3),  # never reached: the margin stops at the first loss
    ]
    assert choose_outlier_bps(swept) == 4
    assert choose_outlier_bps(swept[:2]) == 3  # no margin left
    assert choose_outlier_bps([row(2, 3, noise=2), row(3, 1, noise=None)]) is None  # none safe


def test_run_robustness_writes_results_for_every_cell(tmp_path, capsys):
    # Two epochs: the fewest in which the default policy (2 flags in 3 epochs) can slash.
    rows = run_robustness(
        out=tmp_path,
        byzantine=(0, 3),
        epochs=2,
        seeds=(0, 1),
        alphas=(0.5,),
        attacks=("sign_flip", "ipm_opt", "mimic"),
        workers=1,
        candidates=(20_000, 30_000),
    )
    # per split and rule: f=0 clean, f=3 clean and three attacks
    assert len(rows) == 2 * 2 * (1 + 1 + 3)
    assert all(ROW_FIELDS <= set(row) for row in rows)
    for row in rows:
        assert len(row["per_seed"]) == 2
        assert (row["attackers_slashed_share"] is None) == (row["attack"] == CLEAN)
        for run in row["per_seed"]:
            assert run["drop_points"] == pytest.approx(100 * (run["clean_accuracy"] - run["final_accuracy"]), abs=0.02)
    assert all(row["drop_points"]["mean"] == 0 for row in rows if row["attack"] == CLEAN)
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["rows"] == rows
    assert [c["outlier_bps"] for c in saved["sweep"]["candidates"]] == [20_000, 30_000]
    assert saved["settings"]["runs"] == 2 * len(rows)
    report = (tmp_path / "robustness.md").read_text()
    assert "| iid | 3 | sign_flip |" in report and "## The slashing rule: the sweep" in report
    assert "honest: slashed below (too little)" in report and "how far each client moved" in report
    assert "{policy" not in report  # every placeholder filled
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert capsys.readouterr().err.count("robustness: [") == 2 * len(rows)  # one progress line per run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clients": 15}, "--clients >= 16"),
        ({"aggregations": ("krum",)}, "unknown aggregation 'krum'"),
        ({"attacks": ("poison",)}, "unknown attack 'poison'"),
        ({"seeds": ()}, "at least one --seeds value"),
        ({"workers": 0}, "--workers >= 1"),
    ],
)
def test_run_robustness_rejects_bad_input_in_one_line(tmp_path, options, message):
    with pytest.raises(InputError, match=message) as error:
        run_robustness(out=tmp_path, **options)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "robustness.json").exists()


def test_default_outlier_bps_is_the_one_the_sweep_chose():
    """The contract's default ratio (deployments take SlashingPolicy()) is the experiment's evidence."""
    assert SlashingPolicy().outlier_bps == json.loads(DOCS.read_text())["sweep"]["chosen_outlier_bps"]
