"""`stakelearn bench --quick` (and `--profile chunked --quick`) run end to end, so the benchmark
command cannot rot; the chunked profile's arithmetic is checked on its own."""

import json
import math

import pytest

from stakelearn.pipeline.cli import main
from stakelearn.pipeline.experiments.bench.extrapolation import extrapolate, extrapolations, point_figures


@pytest.mark.slow  # 72 s; the chunked profile's quick run below keeps the command's plumbing in CI
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
    (mixed,) = [row for row in results["points"] if row["variant"] == "nnm"]
    (plain,) = [row for row in rounds if (row["n"], row["d"]) == (mixed["n"], mixed["d"])]
    # at this tiny point the n^3 mixing is a large share; at n = 16, d = 1,024 it is 1.14x
    # (tests/circuits/test_nnm_module.py::test_nnm_costs_at_most_1_2x_the_rows_at_the_reference_point)
    assert plain["rows"] < mixed["rows"] and mixed["round_gas"] == pytest.approx(plain["round_gas"], rel=0.01)
    assert "NNM + Multi-Krum / Multi-Krum rows" in (out / "results.md").read_text()
    (accuracy,) = [row for row in results["points"] if row["variant"] == "accuracy"]
    assert (
        accuracy["rows"] > 0 and accuracy["prove_s"] > 0 and accuracy["prove_peak_mb"] > 0 and accuracy["round_gas"] > 0
    )
    assert (out / "results.png").stat().st_size > 0
    assert "naive/round rows" in (out / "results.md").read_text()
    assert len((out / "results.jsonl").read_text().splitlines()) == len(results["points"])


def test_bench_chunked_quick_measures_a_round_in_chunks(tmp_path):
    out = tmp_path / "chunked"
    assert main(["bench", "--profile", "chunked", "--quick", "--per-transaction", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    (shape,) = results["shapes"]
    assert shape["status"] == "ok" and shape["rows"] > 0 and shape["setup_s"] > 0 and shape["setup_peak_mb"] > 0
    (point,) = results["points"]
    assert point["status"] == "ok"
    assert point["chunks"] == math.ceil(point["d"] / point["chunk"]) == len(point["chunk_prove_s"])
    assert point["rows"] == shape["rows"] and point["combine_rows"] > 0
    assert all(seconds > 0 for seconds in point["chunk_prove_s"]) and point["wall_s"] > 0
    assert point["prove_ms_per_element"] > 0
    assert point["prove_peak_mb"] > 0
    # 3 chunks, 2 per staging transaction: 2 staging transactions, then the combine proof's.
    assert point["stage_transactions"] == len(point["stage_gas_per_transaction"]) == 2
    assert point["stage_gas"] == sum(point["stage_gas_per_transaction"]) and all(
        gas > 0 for gas in point["stage_gas_per_transaction"]
    )
    assert point["epoch_gas"] == point["stage_gas"] + point["combine_gas"] and point["combine_gas"] > 0
    assert point["gas_per_chunk"] == round(point["stage_gas"] / point["chunks"])
    assert [(row["d"], row["chunks"]) for row in results["extrapolation"]["rows"]] == [
        (1_000_000, 125_000),
        (10_000_000, 1_250_000),
    ]
    assert (out / "results.png").stat().st_size > 0
    assert "Extrapolated" in (out / "results.md").read_text()
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_extrapolation_scales_per_chunk_figures():
    row = extrapolate(8, 1024, 1_000_000, seconds_per_chunk=36.0, gas_per_chunk=2_500_000, combine_gas=2_000_000)
    assert row.chunks == 977  # ceil(10^6 / 1024)
    assert row.prove_hours == {1: 977 * 36 / 3600, 8: 977 * 36 / 8 / 3600, 64: 977 * 36 / 64 / 3600}
    assert row.epoch_gas == 977 * 2_500_000 + 2_000_000
    assert row.transactions == 82 + 1  # 12 chunks fit a 30 M block: ceil(977 / 12) staging, then the combine
    with pytest.raises(ValueError):
        extrapolate(8, 1024, 4096, seconds_per_chunk=1.0, gas_per_chunk=31_000_000, combine_gas=1)


def test_extrapolations_start_from_each_shapes_largest_measured_point():
    def point(d, chunks, seconds, status="ok"):
        return {"n": 8, "chunk": 256, "d": d, "chunks": chunks, "status": status, "prove_s_per_chunk": seconds}

    points = [
        {**point(1024, 4, 10.0), "gas_per_chunk": 2e6, "combine_gas": 1},
        {**point(4096, 16, 9.0), "gas_per_chunk": 2e6, "combine_gas": 1},
        {**point(16384, 64, 1.0, status="over the 3600 s limit")},
    ]
    rows = extrapolations(points, targets=(1_000_000,))
    assert [(r.n, r.chunk, r.chunks, r.prove_hours[1]) for r in rows] == [(8, 256, 3907, 3907 * 9.0 / 3600)]


def test_point_figures_per_chunk_element_and_epoch():
    figures = point_figures(n=4, d=20, chunks=2, chunk_seconds=[2.0, 4.0], stage_gas=[300, 100], combine_gas=50)
    assert figures["chunks"] == 2 and figures["prove_s_per_chunk"] == 3.0
    assert figures["prove_ms_per_element"] == 1000 * 6.0 / 80
    # a run that resumed after an earlier one timed only its own chunks: their mean stands for all K
    resumed = point_figures(n=4, d=20, chunks=2, chunk_seconds=[3.0], stage_gas=[300, 100], combine_gas=50)
    assert (resumed["chunks_timed"], resumed["prove_ms_per_element"]) == (1, 1000 * 6.0 / 80)
    assert (figures["stage_gas"], figures["epoch_gas"], figures["gas_per_chunk"]) == (400, 450, 200)


def test_the_chunked_profile_does_not_overwrite_the_round_results():
    from stakelearn.pipeline.cli.bench import default_out

    assert default_out("chunked") != default_out("quick") == default_out("full") == default_out("rules")
