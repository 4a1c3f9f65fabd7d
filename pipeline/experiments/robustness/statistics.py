"""Pure functions of one run's scores, or of counts: ratios to the reference score, flags,
shares, the one-sided upper bound on a rate, and each run's figures."""

from __future__ import annotations

import numpy as np

from stakelearn.errors import InputError
from stakelearn.pipeline.experiments.robustness.simulation import RunResult
from stakelearn.pipeline.experiments.robustness.targets import CONFIDENCE, DETECTION_EPOCHS
from stakelearn.pipeline.federation.rules import flagged, reference_score


def outlier_ratios(scores: np.ndarray, f: int) -> np.ndarray:
    """Each raw score over its epoch's reference score: what ``outlier_bps / 10000`` is compared with."""
    references = np.array([max(reference_score(row, f), 1) for row in scores], dtype=float)
    return np.asarray(scores, dtype=float) / references[:, None]


def shortfall_ratios(values: np.ndarray, f: int) -> np.ndarray:
    """The low-side twin of :func:`outlier_ratios`: the epoch's (f + 1)-th smallest value (which up
    to f attackers below the honest cannot move out of their range) over each value, so that a
    value far below the honest ones gives a high ratio (a value of 0 counts as 1)."""
    references = np.sort(np.asarray(values, dtype=float), axis=1)[:, f]
    return references[:, None] / np.maximum(np.asarray(values, dtype=float), 1.0)


def flags_at(scores: np.ndarray, outlier_bps: int, f: int) -> np.ndarray:
    """The rollup's ``[epochs, n]`` flags under ``outlier_bps`` (:func:`rules.flagged`, epoch by epoch)."""
    return np.array([flagged(row, outlier_bps, f) for row in scores], dtype=bool).reshape(np.shape(scores))


def epochs_to_flag_all(flags: np.ndarray, attackers: list[int]) -> int | None:
    """The epoch (from 1) by which every attacker had been flagged at least once; None if one never was, or none attacked."""
    firsts = [np.flatnonzero(flags[:, a]) for a in attackers]
    if not attackers or any(first.size == 0 for first in firsts):
        return None
    return int(max(first[0] for first in firsts)) + 1


def attacker_weight(weights: np.ndarray, attackers: list[int]) -> float | None:
    """The attackers' share of the aggregate over the run: how much of the model they wrote."""
    if not attackers:
        return None
    return round(float(weights[:, attackers].sum() / weights.sum()), 4)


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def upper_bound(count: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``count`` times in ``trials``: the
    largest rate under which seeing at most ``count`` still has probability ``1 - confidence``.
    With no count it is ``1 - (1 - confidence) ** (1 / trials)``, about 3 / trials at 95 % (the
    rule of three)."""
    if not 0 <= count <= trials or trials < 1:
        raise InputError(f"an upper bound needs 0 <= count <= trials and trials >= 1, got {count} of {trials}")
    if count == trials:
        return 1.0
    if count == 0:
        return 1 - (1 - confidence) ** (1 / trials)
    from scipy.stats import beta  # a declared dependency; only loaded when a count is not 0

    return float(beta.ppf(confidence, count + 1, trials - count))


def run_ratios(result: RunResult) -> dict:
    """A run's ratios to the reference score, whatever the threshold: its worst honest client-epoch
    (any threshold at or above it flags no honest client), and for the attackers the median
    attacker-epoch (below it over half their epochs are flagged) and the least of each attacker's
    worst in the first :data:`DETECTION_EPOCHS` epochs (below it every attacker is flagged in time)."""
    ratios = outlier_ratios(result.scores, result.byzantine)
    attackers = result.attackers
    return {
        "worst_honest_ratio": round(float(ratios[:, result.honest].max()), 3),
        "attackers_median_ratio": round(float(np.median(ratios[:, attackers])), 3) if attackers else None,
        "attackers_early_ratio": round(float(ratios[:DETECTION_EPOCHS, attackers].max(axis=0).min()), 3)
        if attackers
        else None,
        **movement_ratios(result),
    }


def movement_ratios(result: RunResult) -> dict:
    """The same for a flag on the movement (:func:`simulation.movement`), on each side: moved too
    far (over the (p - f)-th smallest) or too little (the (f + 1)-th smallest over it): the worst
    honest client-epoch, and the median attacker-epoch."""
    figures = {}
    for side, ratios in (
        ("far", outlier_ratios(result.movement, result.byzantine)),
        ("little", shortfall_ratios(result.movement, result.byzantine)),
    ):
        figures[f"movement_honest_{side}"] = round(float(ratios[:, result.honest].max()), 3)
        figures[f"movement_attackers_{side}"] = (
            round(float(np.median(ratios[:, result.attackers])), 3) if result.attackers else None
        )
    return figures


def run_flags(result: RunResult, outlier_bps: int) -> dict:
    """A run's flags under ``outlier_bps``, counted in client-epochs: honest ones flagged (unpaid),
    attackers flagged, the epoch by which every attacker was, and the paid epochs (neither flagged
    nor absent: the simulation has no absent client) that went to attackers."""
    flags = flags_at(result.scores, outlier_bps, result.byzantine)
    attackers, honest = result.attackers, result.honest
    epochs = flags.shape[0]
    paid = ~flags
    return {
        "honest_flagged": int(flags[:, honest].sum()),
        "honest_epochs": epochs * len(honest),
        "attackers_flagged": int(flags[:, attackers].sum()),
        "attacker_epochs": epochs * len(attackers),
        "epochs_to_flag_all": epochs_to_flag_all(flags, attackers),
        "attackers_paid": int(paid[:, attackers].sum()),
        "paid": int(paid.sum()),
    }


def run_figures(result: RunResult, clean: RunResult, outlier_bps: int) -> dict:
    """One run's numbers, compared with the clean run of its split, rule, f and seed; flags under ``outlier_bps``."""
    return {
        "final_accuracy": round(result.final_accuracy, 4),
        "clean_accuracy": round(clean.final_accuracy, 4),
        "drop_points": round(100 * (clean.final_accuracy - result.final_accuracy), 2),
        "attacker_weight": attacker_weight(result.weights, result.attackers),
        **run_ratios(result),
        **run_flags(result, outlier_bps),
    }


def spread(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {
        "mean": round(float(array.mean()), 4),
        "std": round(float(array.std()), 4),
        "min": round(float(array.min()), 4),
        "max": round(float(array.max()), 4),
    }


def tally(runs: list[dict]) -> dict:
    """Runs' flag counts (:func:`run_flags`) summed, and their shares: honest client-epochs flagged
    (and runs with one), attacker-epochs flagged, and the attackers' share of the paid epochs
    beside their share of all client-epochs."""
    total = {key: sum(run[key] for run in runs) for key in ("honest_flagged", "honest_epochs", "attackers_flagged")}
    attacker_epochs = sum(run["attacker_epochs"] for run in runs)
    client_epochs = total["honest_epochs"] + attacker_epochs
    return {
        **total,
        "honest_flagged_rate": share(total["honest_flagged"], total["honest_epochs"]),
        "runs": len(runs),
        "runs_with_honest_flagged": sum(1 for run in runs if run["honest_flagged"]),
        "attacker_epochs": attacker_epochs,
        "attackers_flagged_share": share(total["attackers_flagged"], attacker_epochs),
        "attackers_paid_share": share(sum(run["attackers_paid"] for run in runs), sum(run["paid"] for run in runs)),
        "attackers_client_share": share(attacker_epochs, client_epochs),
    }
