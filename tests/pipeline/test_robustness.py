"""The robustness experiment: flags (never slashes) replayed from the raw Krum scores, the flag
ratio chosen on some seeds and judged on others, the statistics of the judgement with numbers
checkable by hand, and the command on a small grid."""

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.pipeline.cli import main
from stakelearn.pipeline.experiments.robustness.report import report_text
from stakelearn.pipeline.experiments.robustness.run import PLOT, run_robustness
from stakelearn.pipeline.experiments.robustness.simulation import CLEAN, Cell, RunResult, movement, simulate
from stakelearn.pipeline.experiments.robustness.statistics import epochs_to_flag_all, flags_at, run_flags, upper_bound
from stakelearn.pipeline.experiments.robustness.sweep import analyse, choose_outlier_bps, seed_sets
from stakelearn.pipeline.federation.rules import PenaltyPolicy
from stakelearn.pipeline.federation.task import TaskConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"
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
    "attacker_weight",
    "worst_honest_ratio",
    "attackers_median_ratio",
    "honest_flagged",
    "honest_epochs",
    "attackers_flagged_share",
    "attackers_paid_share",
    "epochs_to_flag_all",
    "per_seed",
}


def run(scores, attackers, f):
    """A run with hand-made Krum scores (accuracy, weights and movement do not matter here)."""
    scores = np.array(scores, dtype=np.int64)
    zeros = np.zeros_like(scores)
    return RunResult([0.5] * len(scores), zeros + 1, scores, zeros, attackers, f)


def test_simulate_flags_every_noise_attacker_and_no_honest_client_at_the_default_ratio():
    config = TaskConfig(clients=16, byzantine=3, attackers=3, attack="noise", epochs=3, split="iid")
    result = simulate(config)
    assert result.attackers == [13, 14, 15] and result.honest == list(range(13))
    assert result.scores.shape == result.weights.shape == (3, 16)
    assert len(result.accuracy) == 3 and result.final_accuracy > 0.5
    flags = flags_at(result.scores, PenaltyPolicy().outlier_bps, 3)
    assert flags[:, 13:].all() and not flags[:, :13].any()
    assert not result.weights[:, 13:].any()  # Multi-Krum kept them out of the model too


def test_simulate_clean_nnm_run_flags_nobody():
    config = TaskConfig(clients=16, byzantine=3, attackers=0, epochs=3, split="dirichlet", aggregation="nnm-multikrum")
    result = simulate(config)
    assert result.attackers == [] and not flags_at(result.scores, PenaltyPolicy().outlier_bps, 3).any()
    assert (result.weights.sum(axis=1) == config.krum.weight).all()  # m (n - f) with mixing


def test_free_riders_move_a_jitter_away_from_the_global_model():
    config = TaskConfig(clients=16, byzantine=3, attackers=3, attack="free_rider", epochs=2, split="iid")
    result = simulate(config)
    assert result.movement.shape == (2, 16)
    riders, honest = result.movement[:, 13:], result.movement[:, :13]
    assert 0 < riders.max() < honest.min() / 10  # not the global model itself, and far closer to it


def test_movement_is_the_squared_distance_to_the_start():
    start = np.array([1, -2, 3])
    assert movement(np.array([[1, -2, 3], [2, 0, 3]]), start).tolist() == [0, 5]


def test_run_flags_counts_client_epochs_flagged_and_paid():
    # f = 1: the reference is the 3rd smallest of 4 scores, 12 each epoch; at 3x a score over 36 is flagged
    result = run([[10, 11, 12, 40], [10, 11, 12, 40], [10, 11, 50, 12]], [3], 1)
    flags = flags_at(result.scores, 30_000, 1)
    assert flags[:, 3].tolist() == [True, True, False] and flags[:, 2].tolist() == [False, False, True]
    assert run_flags(result, 30_000) == {
        "honest_flagged": 1,  # client 2 in epoch 3
        "honest_epochs": 9,
        "attackers_flagged": 2,
        "attacker_epochs": 3,
        "epochs_to_flag_all": 1,
        "attackers_paid": 1,  # epoch 3
        "paid": 9,  # 12 client-epochs, 3 flagged
    }
    assert epochs_to_flag_all(flags, [2, 3]) == 3 and epochs_to_flag_all(flags, [0, 3]) is None
    assert epochs_to_flag_all(flags, []) is None


@pytest.mark.parametrize(
    ("count", "trials", "bound"),
    [
        (0, 1, 0.95),  # P(0 of 1) = 1 - p = 0.05
        (0, 59, 1 - 0.05 ** (1 / 59)),  # 0.0495, the rule of three's 3 / 59 = 0.0508
        (1, 2, math.sqrt(0.95)),  # P(X <= 1 of 2) = 1 - p^2 = 0.05
        (2, 2, 1.0),
    ],
)
def test_upper_bound_is_clopper_pearson_one_sided(count, trials, bound):
    assert upper_bound(count, trials) == pytest.approx(bound, rel=1e-9)


def test_upper_bound_of_no_count_is_about_the_rule_of_three():
    assert upper_bound(0, 300_000) == pytest.approx(3 / 300_000, rel=0.002)


def test_upper_bound_rejects_a_count_over_its_trials():
    with pytest.raises(InputError, match="0 <= count <= trials"):
        upper_bound(3, 2)


def test_choose_outlier_bps_takes_the_margin_that_keeps_the_smallest_safe_candidates_detection():
    def row(bps, honest, **epochs):
        return {"outlier_bps": bps, "honest_flagged": honest, "iid_epochs_to_flag": epochs}

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
    # the smallest safe flags no IID attacker in time: nothing bounds a margin, so none
    assert choose_outlier_bps([row(2, 1, noise=2), row(3, 0, noise=None), row(4, 0, noise=None)]) == 3


def test_the_ratio_chosen_on_one_seed_is_judged_on_another():
    # n = 5, f = 2: the reference is the 3rd smallest score, 10 in every epoch below.
    # Epoch 1: the two sign flippers score 3.5x; epoch 2: honest client 2 scores 2.5x on the
    # choosing seed, 3.2x on the judging one.
    cell = Cell("iid", None, "multikrum", 2, "sign_flip")
    clean = [[10] * 5, [10] * 5]
    results = {
        (cell.clean, 0): run(clean, [], 2),
        (cell, 0): run([[10, 10, 10, 35, 35], [10, 10, 25, 10, 10]], [3, 4], 2),
        (cell.clean, 1): run(clean, [], 2),
        (cell, 1): run([[10, 10, 10, 35, 35], [10, 10, 32, 10, 10]], [3, 4], 2),
    }
    analysis = analyse(results, (0,), (1,), (20_000, 30_000, 40_000))
    chosen = analysis["choice"]
    # 2x flags the honest client (2.5x); 3x flags only the attackers, in epoch 1; 4x flags nobody,
    # so it loses the in-time detection: no margin
    assert [c["honest_flagged"] for c in chosen["candidates"]] == [1, 0, 0]
    assert chosen["smallest_safe_bps"] == chosen["chosen_outlier_bps"] == 30_000
    judged = analysis["judgement"]["chosen"]
    assert judged["outlier_bps"] == 30_000 and "smallest_safe" not in analysis["judgement"]
    # held out: the honest client at 3.2x is flagged, one of 3 x 2 (attacked run) + 5 x 2 (clean run)
    assert (judged["honest_flagged"], judged["honest_epochs"], judged["runs_with_honest_flagged"]) == (1, 16, 1)
    assert judged["honest_flagged_rate"] == pytest.approx(1 / 16, abs=1e-6)
    assert judged["runs_with_honest_flagged_upper"] == pytest.approx(math.sqrt(0.95))  # 1 of 2 runs
    assert judged["worst_honest_ratio"] == 3.2 and judged["margin"] == pytest.approx(3.2 / 3, abs=1e-4)
    assert judged["where_honest_flagged"] == ["iid MK f=2 sign_flip"]
    # the attackers: flagged in epoch 1 (2 of 4 attacker-epochs); of the 7 paid client-epochs, 2 theirs
    assert judged["attackers_flagged_share"] == 0.5
    assert judged["attackers_paid_share"] == pytest.approx(2 / 7, abs=1e-6)
    assert judged["attackers_client_share"] == 0.4
    assert judged["iid_epochs_to_flag"] == {"sign_flip f=2": 1}
    row = next(r for r in analysis["rows"] if r["attack"] == "sign_flip")
    assert row["worst_honest_ratio"] == {"choose": 2.5, "judge": 3.2}
    assert [s["role"] for s in row["per_seed"]] == ["choose", "judge"]


def test_seed_sets_refuse_a_seed_in_both_in_one_line():
    assert seed_sets((0, 1), (2,)) == ((0, 1), (2,))
    with pytest.raises(InputError, match=r"both choosing and judging the flag ratio \(1, 3\)") as error:
        seed_sets((0, 1, 3), (1, 2, 3))
    assert "\n" not in str(error.value)


def test_run_robustness_writes_results_for_every_cell(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stakelearn")
    analysis = run_robustness(
        out=tmp_path,
        byzantine=(0, 3),
        epochs=2,
        choosing_seeds=(0,),
        judging_seeds=(1,),
        alphas=(0.5,),
        attacks=("noise", "ipm_opt", "mimic"),
        workers=1,
        candidates=(20_000, 30_000),
    )
    rows = analysis["rows"]
    # per split and rule: f=0 clean, f=3 clean and three attacks
    assert len(rows) == 2 * 2 * (1 + 1 + 3)
    assert all(ROW_FIELDS <= set(row) for row in rows)
    for row in rows:
        assert [s["seed"] for s in row["per_seed"]] == [0, 1]
        assert (row["attackers_flagged_share"] is None) == (row["attack"] == CLEAN)
        assert row["honest_epochs"] == 2 * (16 - row["attackers"])  # the judging seed's only
        for seed in row["per_seed"]:
            assert seed["drop_points"] == pytest.approx(
                100 * (seed["clean_accuracy"] - seed["final_accuracy"]), abs=0.02
            )
    assert all(row["drop_points"]["mean"] == 0 for row in rows if row["attack"] == CLEAN)
    saved = json.loads((tmp_path / "results" / "robustness.json").read_text())
    assert saved["rows"] == rows and saved["choice"] == analysis["choice"]
    assert [c["outlier_bps"] for c in saved["choice"]["candidates"]] == [20_000, 30_000]
    assert saved["choice"]["seeds"] == [0] and saved["judgement"]["seeds"] == [1]
    assert saved["settings"]["runs"] == 2 * len(rows)
    report = (tmp_path / "robustness.md").read_text()
    assert "Honest clients slashed: 0, by construction" in report
    assert "| iid | 3 | noise |" in report and "judged on seeds 1 (held out)" in report
    assert "{" not in report.replace("{0, 3}", "").replace("{0.5}", "")  # every placeholder filled
    assert "$" not in report and "![robustness](results/robustness.png)" in report
    assert (tmp_path / "results" / "robustness.png").stat().st_size > 0
    assert caplog.text.count("robustness: [") == 2 * len(rows)  # one progress line per run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clients": 15}, "--clients >= 16"),
        ({"aggregations": ("krum",)}, "unknown aggregation 'krum'"),
        ({"attacks": ("poison",)}, "unknown attack 'poison'"),
        ({"choosing_seeds": ()}, "at least one --choosing-seeds value"),
        ({"choosing_seeds": (0, 5), "judging_seeds": (5, 6)}, r"both choosing and judging the flag ratio \(5\)"),
        ({"choosing_seeds": (0, 1, 1)}, "each --choosing-seeds value once; repeated: 1"),
        ({"attacks": ("noise", "ipm", "noise")}, "each --attacks value once; repeated: noise"),
        ({"byzantine": (3, 3)}, "each --byzantine value once; repeated: 3"),
        ({"candidates": (5_000,)}, "candidate flag ratios in 10000"),
        ({"workers": 0}, "--workers >= 1"),
    ],
)
def test_run_robustness_rejects_bad_input_in_one_line(tmp_path, options, message):
    with pytest.raises(InputError, match=message) as error:
        run_robustness(out=tmp_path, **options)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "results" / "robustness.json").exists()


def test_default_outlier_bps_is_the_one_the_choosing_seeds_chose():
    """The contracts' default flag ratio (deployments take PenaltyPolicy()) is the experiment's evidence."""
    stored = json.loads((DOCS / "results" / "robustness.json").read_text())
    assert PenaltyPolicy().outlier_bps == stored["choice"]["chosen_outlier_bps"]


def test_the_committed_report_is_its_stored_results_written_out():
    """docs/robustness.md is what the code writes from docs/results/robustness.json: no figure
    edited by hand, no prose the code no longer writes."""
    stored = json.loads((DOCS / "results" / "robustness.json").read_text())
    settings = stored.pop("settings")
    assert report_text(settings, stored, PLOT.as_posix()) == (DOCS / "robustness.md").read_text()


def test_report_only_rewrites_the_report_from_the_stored_results(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    shutil.copy(DOCS / "results" / "robustness.json", tmp_path / "results")
    assert main(["robustness", "--report-only", "--out", str(tmp_path), "--json"]) == 0
    assert (tmp_path / "robustness.md").read_text() == (DOCS / "robustness.md").read_text()
    assert (tmp_path / "results" / "robustness.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert printed.startswith("- **The flag ratio, chosen on seeds 0, 1, 2, 3, 4: 7.5×") and '"judgement"' in printed


def test_report_only_without_results_is_one_line(tmp_path, capsys):
    assert main(["robustness", "--report-only", "--out", str(tmp_path)]) != 0
    error = capsys.readouterr().err.strip()
    assert "results/robustness.json" in error and "\n" not in error
