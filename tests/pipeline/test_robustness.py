"""The robustness experiment on a small grid: Krum catches a plain attack, the clean run slashes
nobody, and the command writes its three files."""

import json

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.pipeline.apps.robustness import CLEAN, honest_ever_rate, missed_rate, run_robustness, simulate
from stakelearn.pipeline.federation.attacks import ATTACKS
from stakelearn.pipeline.federation.rules import SlashingPolicy
from stakelearn.pipeline.federation.task import TaskConfig

ROW_FIELDS = {
    "attack",
    "split",
    "f",
    "attackers",
    "final_accuracy",
    "clean_accuracy",
    "drop_points",
    "false_slash_rate",
    "missed_attacker_rate",
    "honest_flagged_rate",
    "accuracy_per_epoch",
}


def test_simulate_sign_flip_slashes_every_attacker_and_no_honest_client():
    config = TaskConfig(clients=16, byzantine=3, attackers=3, attack="sign_flip", epochs=3, split="iid")
    result = simulate(config, SlashingPolicy())
    assert result.attackers == [13, 14, 15]
    assert result.flags.shape == result.slashes.shape == (3, 16)
    assert len(result.accuracy) == 3 and result.final_accuracy > 0.5
    assert missed_rate(result.slashes, result.attackers) == 0.0
    assert honest_ever_rate(result.slashes, result.attackers) == 0.0
    assert np.flatnonzero(result.slashes.any(axis=0)).tolist() == [13, 14, 15]


def test_simulate_clean_run_slashes_nobody():
    config = TaskConfig(clients=16, byzantine=3, attackers=0, epochs=3, split="dirichlet")
    result = simulate(config, SlashingPolicy())
    assert result.attackers == []
    assert not result.slashes.any()
    assert honest_ever_rate(result.slashes, result.attackers) == 0.0
    assert missed_rate(result.slashes, result.attackers) is None


def test_run_robustness_writes_results_for_every_cell(tmp_path, capsys):
    # Two epochs: the fewest in which the default policy (2 flags in 3 epochs) can slash.
    rows = run_robustness(out=tmp_path, clients=16, byzantine=(3,), epochs=2, seed=0, alpha=0.5)
    assert len(rows) == 2 * (1 + len(ATTACKS))
    assert all(ROW_FIELDS <= set(row) for row in rows)
    for row in rows:
        assert row["drop_points"] == pytest.approx(100 * (row["clean_accuracy"] - row["final_accuracy"]), abs=0.02)
        assert (row["missed_attacker_rate"] is None) == (row["attack"] == CLEAN)
    clean = [row for row in rows if row["attack"] == CLEAN]
    assert [row["false_slash_rate"] for row in clean] == [0.0, 0.0]
    assert json.loads((tmp_path / "robustness.json").read_text())["rows"] == rows
    assert "| sign_flip | iid | 3 |" in (tmp_path / "robustness.md").read_text()
    assert (tmp_path / "robustness.png").stat().st_size > 0
    assert capsys.readouterr().err.count("robustness: ") == len(rows)  # one progress line per run


def test_run_robustness_rejects_fewer_than_16_clients(tmp_path):
    with pytest.raises(InputError, match="--clients >= 16"):
        run_robustness(out=tmp_path, clients=15)
    assert not (tmp_path / "robustness.json").exists()
