"""The experiment's edges: run the grid, analyse it, write the results; or rewrite the report from
results written before.

An output folder holds the report, ``robustness.md``, and beside it in ``results/`` the result
data it is read off: ``robustness.json`` (settings, the sweep, the choice, the judgement, per-cell
rows with every seed's numbers) and ``robustness.png``; ``docs/`` is such a folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from stakelearn.circuits.krum import RULES
from stakelearn.errors import ArtifactError, InputError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.pipeline.experiments.robustness.grid import grid, run_grid
from stakelearn.pipeline.experiments.robustness.plot import plot
from stakelearn.pipeline.experiments.robustness.report import report_text
from stakelearn.pipeline.experiments.robustness.sweep import (
    CANDIDATE_BPS,
    CHOOSING_SEEDS,
    JUDGING_SEEDS,
    analyse,
    seed_sets,
)
from stakelearn.pipeline.federation.attacks import ATTACKS
from stakelearn.pipeline.federation.rules import PenaltyPolicy

REPORT = Path("robustness.md")
RESULTS = Path("results") / "robustness.json"
PLOT = Path("results") / "robustness.png"


def write_report(out: Path, settings: dict, analysis: dict) -> None:
    """``out/robustness.md`` and ``out/results/robustness.png``."""
    write_bytes_atomic(out / REPORT, report_text(settings, analysis, PLOT.as_posix()).encode())
    write_bytes_atomic(out / PLOT, plot(analysis))


def write_results(out: Path, settings: dict, analysis: dict) -> None:
    """``out/results/robustness.json``, then the report read off it (:func:`write_report`)."""
    out = Path(out)
    write_json_atomic(out / RESULTS, {"settings": settings, **analysis})
    write_report(out, settings, analysis)


def rewrite_report(out: Path) -> dict:
    """The report rewritten from ``out/results/robustness.json`` without running anything; return
    the analysis stored there."""
    out = Path(out)
    try:
        stored = json.loads((out / RESULTS).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no {out / RESULTS} to write the report from: run `stakelearn robustness` first") from None
    settings = stored.pop("settings")
    write_report(out, settings, stored)
    return stored


def run_robustness(
    out: Path,
    clients: int = 16,
    byzantine: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6),
    epochs: int = 10,
    choosing_seeds: tuple[int, ...] = CHOOSING_SEEDS,
    judging_seeds: tuple[int, ...] = JUDGING_SEEDS,
    alphas: tuple[float, ...] = (0.1, 0.5, 1.0),
    aggregations: tuple[str, ...] = RULES,
    attacks: tuple[str, ...] = tuple(ATTACKS),
    workers: int = 2,
    candidates: tuple[int, ...] = CANDIDATE_BPS,
) -> dict:
    """Run the grid, log one line per run, choose the flag ratio on the choosing seeds and judge
    it on the judging seeds, write the report and its results (:func:`write_results`); return the
    analysis (:func:`sweep.analyse`)."""
    if workers < 1:
        raise InputError(f"robustness needs --workers >= 1, got {workers}")
    choosing, judging = seed_sets(choosing_seeds, judging_seeds)
    candidates = tuple(sorted(set(candidates)))
    if not candidates or not all(10_000 <= bps <= 2**32 for bps in candidates):
        raise InputError("robustness needs candidate flag ratios in 10000..2^32 ten-thousandths of the reference")
    runs = grid(clients, byzantine, alphas, aggregations, attacks, choosing + judging, epochs)
    start = time.perf_counter()
    results = run_grid(runs, workers)
    grid_seconds = round(time.perf_counter() - start, 1)
    analysis = analyse(results, choosing, judging, candidates)
    settings = {
        "clients": clients,
        "byzantine": list(byzantine),
        "epochs": epochs,
        "choosing_seeds": list(choosing),
        "judging_seeds": list(judging),
        "alphas": list(alphas),
        "aggregations": list(aggregations),
        "attacks": list(attacks),
        "candidates": list(candidates),
        "policy": asdict(PenaltyPolicy()),
        "workers": workers,
        "runs": len(runs),
        "grid_seconds": grid_seconds,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_results(out, settings, analysis)
    return analysis
