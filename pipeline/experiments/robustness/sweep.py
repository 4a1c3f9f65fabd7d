"""The flag ratio, chosen on some seeds and judged on others, and each cell's figures.

The flag ratio is a threshold chosen from data, so it is chosen on some seeds and judged on
others: the choice is the smallest candidate ``outlier_bps`` that flags no honest client in any
run of the choosing seeds, then the candidates above it for a margin, as long as they still flag
every IID attacker the smallest one flags in time; the judgement replays the chosen ratio on the
held-out seeds (honest client-epochs flagged, with a one-sided 95 % Clopper-Pearson upper bound
on their rate, the margin left, the attackers flagged and the share of the paid epochs they
earned). All pure functions of the runs' results.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from stakelearn.errors import InputError
from stakelearn.pipeline.experiments.robustness.grid import Results, distinct
from stakelearn.pipeline.experiments.robustness.simulation import CLEAN, SHORT_RULE, Cell
from stakelearn.pipeline.experiments.robustness.statistics import (
    run_figures,
    run_flags,
    run_ratios,
    spread,
    tally,
    upper_bound,
)
from stakelearn.pipeline.experiments.robustness.targets import DETECTED, DETECTION_EPOCHS

CHOOSING_SEEDS = (0, 1, 2, 3, 4)  # the flag ratio is chosen on these runs ...
JUDGING_SEEDS = (5, 6, 7, 8, 9)  # ... and judged on these, never the same
# outlier ratios swept, as multiples of the reference score (x 10,000)
CANDIDATE_BPS = (
    20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 75_000, 80_000, 100_000, 120_000, 150_000,
    200_000, 250_000, 300_000, 400_000, 500_000,
)  # fmt: skip


def seed_sets(choosing: tuple[int, ...], judging: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two seed sets, refused if either is empty, names a seed twice, or they share a seed (a
    ratio judged on the seeds it was chosen on says nothing about unseen runs)."""
    choosing, judging = distinct("--choosing-seeds", choosing), distinct("--judging-seeds", judging)
    if not choosing or not judging:
        raise InputError("robustness needs at least one --choosing-seeds value and one --judging-seeds value")
    overlap = [seed for seed in choosing if seed in judging]
    if overlap:
        raise InputError(
            f"robustness refuses seeds both choosing and judging the flag ratio ({', '.join(map(str, overlap))}): "
            "a ratio must be judged on runs it was not chosen on"
        )
    return choosing, judging


def cell_name(cell: Cell) -> str:
    return f"{cell.data} {SHORT_RULE.get(cell.aggregation, cell.aggregation)} f={cell.f} {cell.attack}"


def on_seeds(results: Results, seeds: tuple[int, ...]) -> Results:
    return {key: result for key, result in results.items() if key[1] in seeds}


def iid_detection(flags: dict[tuple[Cell, int], dict]) -> dict[str, int | None]:
    """Per IID attack of :data:`DETECTED` and f: the epoch by which every attacker of every run
    (either rule) had been flagged; None if one never was."""
    detection: dict[str, int | None] = {}
    for (cell, _), run in flags.items():
        if cell.alpha is None and cell.attack in DETECTED and cell.f:
            key, worst = f"{cell.attack} f={cell.f}", detection.get(f"{cell.attack} f={cell.f}", 0)
            epochs = run["epochs_to_flag_all"]
            detection[key] = None if epochs is None or worst is None else max(worst, epochs)
    return detection


def flag_summary(results: Results, outlier_bps: int) -> dict:
    """Every run's flags under ``outlier_bps``, summed: honest client-epochs flagged (in how many
    runs, which cells), attacker-epochs flagged and paid per attack, and IID detection in time."""
    flags = {key: run_flags(result, outlier_bps) for key, result in results.items()}
    attacks = list(dict.fromkeys(cell.attack for cell, _ in flags if cell.attack != CLEAN))
    per_attack = {
        attack: {
            key: value
            for key, value in tally([run for (cell, _), run in flags.items() if cell.attack == attack]).items()
            if key.startswith("attackers_")
        }
        for attack in attacks
    }
    attacked = tally([run for (cell, _), run in flags.items() if cell.attack != CLEAN])
    return {
        "outlier_bps": outlier_bps,
        **{key: value for key, value in tally(list(flags.values())).items() if not key.startswith("attackers_")},
        "where_honest_flagged": sorted({cell_name(cell) for (cell, _), run in flags.items() if run["honest_flagged"]}),
        "attackers_flagged_share": attacked["attackers_flagged_share"],
        "attackers_paid_share": attacked["attackers_paid_share"],
        "attackers_client_share": attacked["attackers_client_share"],
        "per_attack": per_attack,
        "iid_epochs_to_flag": iid_detection(flags),
    }


def sweep(results: Results, candidates: tuple[int, ...]) -> list[dict]:
    """:func:`flag_summary` per candidate ``outlier_bps``, in increasing order."""
    return [flag_summary(results, bps) for bps in sorted(candidates)]


def in_time(row: dict) -> set[str]:
    """The IID cells (attack and f) whose every attacker a swept candidate flagged within
    :data:`DETECTION_EPOCHS` epochs."""
    return {
        key for key, epochs in row["iid_epochs_to_flag"].items() if epochs is not None and epochs <= DETECTION_EPOCHS
    }


def smallest_safe(swept: list[dict]) -> int | None:
    """The index of the smallest candidate that flags no honest client in any run; None if every one does."""
    return next((i for i, row in enumerate(swept) if row["honest_flagged"] == 0), None)


def choose_outlier_bps(swept: list[dict]) -> int | None:
    """The smallest candidate (in increasing order) that flags no honest client in any run, then
    for a margin the largest above it, in an unbroken run of candidates, that still flags in time
    every IID attacker it does; None if every candidate flags an honest client. No margin when it
    flags no IID attacker in time: nothing would bound it. (A higher ratio only flags less: safety
    grows and detection shrinks up the list.)"""
    first = smallest_safe(swept)
    if first is None:
        return None
    last = first
    if not in_time(swept[first]):
        return swept[first]["outlier_bps"]
    while last + 1 < len(swept) and in_time(swept[last + 1]) >= in_time(swept[first]):
        last += 1
    return swept[last]["outlier_bps"]


def judge(results: Results, outlier_bps: int) -> dict:
    """The flag ratio replayed on runs it was not chosen on: :func:`flag_summary`, with one-sided
    upper bounds on the honest-flag rate (per client-epoch, and per run: client-epochs of one run
    share its data and its attackers, so the per-run bound is the one that assumes less), and
    the margin: the worst honest ratio over the ratio (under 1: no honest client flagged)."""
    summary = flag_summary(results, outlier_bps)
    clean = tally([run_flags(result, outlier_bps) for (cell, _), result in results.items() if cell.attack == CLEAN])
    worst_key = max(results, key=lambda key: run_ratios(results[key])["worst_honest_ratio"])
    worst = run_ratios(results[worst_key])["worst_honest_ratio"]
    return {
        **summary,
        "honest_flagged_upper": round(upper_bound(summary["honest_flagged"], summary["honest_epochs"]), 8),
        "runs_with_honest_flagged_upper": round(upper_bound(summary["runs_with_honest_flagged"], summary["runs"]), 8),
        "without_attackers": {
            "honest_flagged": clean["honest_flagged"],
            "honest_epochs": clean["honest_epochs"],
            "honest_flagged_upper": round(upper_bound(clean["honest_flagged"], clean["honest_epochs"]), 8),
        },
        "worst_honest_ratio": worst,
        "worst_honest_run": f"{cell_name(worst_key[0])} seed {worst_key[1]}",
        "margin": round(worst * 10_000 / outlier_bps, 4),
    }


def choice(results: Results, choosing: tuple[int, ...], candidates: tuple[int, ...]) -> dict:
    """The sweep on the choosing seeds and what it chose (:func:`choose_outlier_bps`)."""
    swept = sweep(on_seeds(results, choosing), candidates)
    first = smallest_safe(swept)
    return {
        "seeds": list(choosing),
        "candidates": swept,
        "smallest_safe_bps": None if first is None else swept[first]["outlier_bps"],
        "chosen_outlier_bps": choose_outlier_bps(swept),
    }


def cell_row(cell: Cell, clients: int, runs: list[tuple[int, str, dict]]) -> dict:
    """A cell's figures: accuracy over all its seeds (no threshold is chosen on it); the worst
    honest and the attackers' ratios per seed set; the flags under the judged ratio on the
    judging seeds; then every seed's own figures."""
    attackers = 0 if cell.attack == CLEAN else cell.f
    everyone = [figures for _, _, figures in runs]
    judged = [figures for _, role, figures in runs if role == "judge"]
    epochs = [run["epochs_to_flag_all"] for run in judged]

    def per_role(key: str, pick) -> dict:
        return {
            role: pick([figures[key] for _, r, figures in runs if r == role])
            if attackers or key == "worst_honest_ratio"
            else None
            for role in ("choose", "judge")
        }

    return {
        **asdict(cell),
        "data": cell.data,
        "clients": clients,
        "attackers": attackers,
        "final_accuracy": spread([run["final_accuracy"] for run in everyone]),
        "clean_accuracy": spread([run["clean_accuracy"] for run in everyone]),
        "drop_points": spread([run["drop_points"] for run in everyone]),
        "attacker_weight": round(float(np.mean([run["attacker_weight"] for run in everyone])), 4)
        if attackers
        else None,
        "worst_honest_ratio": per_role("worst_honest_ratio", max),
        "attackers_median_ratio": per_role("attackers_median_ratio", lambda v: round(float(np.median(v)), 3)),
        "attackers_early_ratio": per_role("attackers_early_ratio", min),
        **{
            key: max(run[key] for run in everyone)
            if "honest" in key
            else (round(float(np.median([run[key] for run in everyone])), 3) if attackers else None)
            for key in (
                "movement_honest_far",
                "movement_honest_little",
                "movement_attackers_far",
                "movement_attackers_little",
            )
        },
        **tally(judged),
        "epochs_to_flag_all": None if not attackers or None in epochs else max(epochs),
        "per_seed": [{"seed": seed, "role": role, **figures} for seed, role, figures in runs],
    }


def summarize(results: Results, choosing: tuple[int, ...], judging: tuple[int, ...], outlier_bps: int) -> list[dict]:
    """One row per cell, in grid order (:func:`cell_row`)."""
    cells = list(dict.fromkeys(cell for cell, _ in results))
    roles = [(seed, "choose") for seed in choosing] + [(seed, "judge") for seed in judging]
    return [
        cell_row(
            cell,
            results[cell, choosing[0]].scores.shape[1],
            [(s, role, run_figures(results[cell, s], results[cell.clean, s], outlier_bps)) for s, role in roles],
        )
        for cell in cells
    ]


def analyse(
    results: Results,
    choosing: tuple[int, ...],
    judging: tuple[int, ...],
    candidates: tuple[int, ...],
) -> dict:
    """The choice on the choosing seeds, its judgement on the judging seeds (and, when the margin
    moved it, the smallest safe candidate's too), and the per-cell rows under the judged ratio.
    With no safe candidate, the largest is judged."""
    chosen = choice(results, choosing, candidates)
    judged_bps = chosen["chosen_outlier_bps"] or max(candidates)
    held_out = on_seeds(results, judging)
    judgement = {"seeds": list(judging), "chosen": judge(held_out, judged_bps)}
    smallest = chosen["smallest_safe_bps"]
    if smallest is not None and smallest != judged_bps:
        judgement["smallest_safe"] = judge(held_out, smallest)
    return {"choice": chosen, "judgement": judgement, "rows": summarize(results, choosing, judging, judged_bps)}
