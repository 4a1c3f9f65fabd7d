"""`stakelearn bench --quick` runs end to end, so the benchmark command cannot rot."""

import json

from stakelearn.pipeline.cli import main


def test_bench_quick_measures_every_point(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    rounds = [row for row in results["points"] if row["variant"] == "round"]
    naive = [row for row in results["points"] if row["variant"] == "naive"]
    assert rounds and naive and all(row["status"] == "ok" for row in results["points"])
    for row in rounds:
        assert row["rows"] > 0 and row["prove_s"] > 0 and row["prove_peak_mb"] > 0
        assert row["setup_s"] > 0  # keys were set up afresh, not taken from a cache
        assert 0 < row["verifier_gas"] < row["round_gas"]
        assert row["rows_per_element"] == round(row["rows"] / (row["n"] * row["d"]), 3)
    assert naive[0]["rows"] > rounds[0]["rows"]  # the baseline is the costlier formulation
    (accuracy,) = [row for row in results["points"] if row["variant"] == "accuracy"]
    assert (
        accuracy["rows"] > 0 and accuracy["prove_s"] > 0 and accuracy["prove_peak_mb"] > 0 and accuracy["round_gas"] > 0
    )
    assert (out / "results.png").stat().st_size > 0
    assert "naive/round rows" in (out / "results.md").read_text()
    assert len((out / "results.jsonl").read_text().splitlines()) == len(results["points"])
