"""`stakelearn robustness`: how Multi-Krum, NNM + Multi-Krum and the flag rule hold up against each attack.

The numpy reference of the proven pipeline, minus proofs and chain: every epoch the clients
train, attackers craft their updates, updates are quantized, the task's rule (Multi-Krum, or
nearest-neighbour mixing then Multi-Krum) aggregates, and the global model moves to the
aggregate. Each run keeps its raw Krum scores, what the chain flags on, so the flag rule can be
replayed for any outlier ratio after the grid.

A flag only makes the client's epoch unpaid; stake is slashed only for equivocation (two
signed commitments for one task and epoch), which an honest client's signer never produces,
so no honest client is slashed, by construction, and the grid has no slashing to replay.

The grid: split (IID, Dirichlet alpha per value) x rule x f (attackers = f, Krum set to the
same f, m = n - f; f = 0 runs clean only) x attack (the clean run first) x seed; each run is
compared with the clean run of the same split, rule, f and seed. The flag ratio is a threshold
chosen from data, so it is chosen on some seeds and judged on others: the choice is the
smallest candidate ``outlier_bps`` that flags no honest client in any run of the choosing seeds,
then the candidates above it for a margin, as long as they still flag every IID attacker the
smallest one flags in time; the judgement replays the chosen ratio on the held-out seeds
(honest client-epochs flagged, with a one-sided 95 % Clopper-Pearson upper bound on their rate,
the margin left, the attackers flagged and the share of the paid epochs they earned).

Sections: simulation (one run, the grid), statistics (pure functions of one run's scores or of
counts), sweep (candidates on the choosing seeds, the choice, the judgement on the judging
seeds), report (tables, findings, plot). Results: ``robustness.json`` (settings, the sweep, the
choice, the judgement, per-cell rows with every seed's numbers), ``robustness.md`` (tables and
the findings read off them) and ``robustness.png``.
"""

from __future__ import annotations

import io
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import MULTIKRUM, NNM_MULTIKRUM, RULES, krum_round
from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.digits import accuracy, initial_parameters, one_torch_thread
from stakelearn.models.quantize import quantize
from stakelearn.pipeline.apps.tables import markdown_table
from stakelearn.pipeline.federation.attacks import ATTACKS, get_attack
from stakelearn.pipeline.federation.rules import PenaltyPolicy, flagged, reference_score
from stakelearn.pipeline.federation.task import TaskConfig, client_models, make_federation, next_global

CLEAN = "none"  # the grid's name for the run without attackers
MIN_CLIENTS = 16  # below this, f=6 (the interesting end) breaks Krum's n > 2f + 2
CHOOSING_SEEDS = (0, 1, 2, 3, 4)  # the flag ratio is chosen on these runs ...
JUDGING_SEEDS = (5, 6, 7, 8, 9)  # ... and judged on these, never the same
# outlier ratios swept, as multiples of the reference score (x 10,000)
CANDIDATE_BPS = (
    20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 75_000, 80_000, 100_000, 120_000, 150_000,
    200_000, 250_000, 300_000, 400_000, 500_000,
)  # fmt: skip
CONFIDENCE = 0.95  # of the one-sided upper bound on the honest-flag rate

# The targets the findings check.
DETECTED = ("sign_flip", "noise", "label_flip")  # on IID data: every attacker flagged ...
DETECTION_EPOCHS = 3  # ... within this many epochs
TARGET_ALPHA = 0.5  # the non-IID split the accuracy targets are set on
KEPT_CLOSE = ("sign_flip", "noise", "label_flip", "free_rider")  # with NNM, within ...
TARGET_POINTS = 5.0  # ... this many points of the clean run
CRAFTED = ("alie", "ipm", "alie_opt", "ipm_opt")  # NNM's damage at most half of Multi-Krum's
MOVED_LITTLE = ("free_rider", "ipm")  # the attacks a too-little movement flag would be for
NOISE_POINTS = 2.0  # a drop below this is within the seeds' spread: nothing to halve

SHORT_RULE = {MULTIKRUM: "MK", NNM_MULTIKRUM: "NNM"}


# Simulation: one run, and the grid of runs.


@dataclass(frozen=True)
class Cell:
    """One cell of the grid; its seeds are its runs."""

    split: str  # "iid" or "dirichlet"
    alpha: float | None  # Dirichlet concentration; None for IID
    aggregation: str
    f: int
    attack: str

    @property
    def data(self) -> str:
        return "iid" if self.alpha is None else f"α={self.alpha:g}"

    @property
    def clean(self) -> Cell:
        return replace(self, attack=CLEAN)


@dataclass(frozen=True)
class RunResult:
    """One simulated task: accuracy after each epoch, and each epoch's aggregation weights and raw Krum scores."""

    accuracy: list[float]  # after each epoch
    weights: np.ndarray  # [epochs, n] int, each committed update's weight in the aggregate (of KrumParams.weight)
    scores: np.ndarray  # [epochs, n] int, the raw Krum scores the chain flags on
    movement: np.ndarray  # [epochs, n] int, see :func:`movement`: a statistic tried, not flagged on
    attackers: list[int]
    byzantine: int  # the task's f, which sets the reference score

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1]

    @property
    def honest(self) -> list[int]:
        return [c for c in range(self.scores.shape[1]) if c not in self.attackers]


def simulate(config: TaskConfig) -> RunResult:
    """Run ``config``'s task epoch by epoch, exactly as the proven pipeline does, without proofs."""
    federation = make_federation(config)
    model = initial_parameters(config.hidden, config.seed)
    accuracies, weights, scores, moved = [], [], [], []
    with one_torch_thread():
        for epoch in range(1, config.epochs + 1):  # numbered as on chain: same seeds as the demo
            models = client_models(federation, model, epoch)
            quantized = np.stack([quantize(row, config.fixed_point) for row in models])
            round_ = krum_round(quantized, config.krum)
            weights.append(round_.weights)
            scores.append(round_.scores)
            moved.append(movement(quantized, quantize(model, config.fixed_point)))
            model = next_global(round_.total, config.krum.weight, config.fixed_point)
            accuracies.append(accuracy(model, federation.test, config.hidden))
    return RunResult(
        accuracies,
        np.array(weights, dtype=np.int64),
        np.array(scores, dtype=np.int64),
        np.array(moved, dtype=np.int64),
        config.attacker_ids,
        config.byzantine,
    )


def movement(models: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Each quantized model's squared distance to the quantized global model it trained from: how
    far its client moved. A per-client statistic a circuit could prove next (with the previous
    aggregate as an input), measured here against the same targets as the Krum scores."""
    return ((models.astype(np.int64) - start.astype(np.int64)) ** 2).sum(axis=1)


def grid(
    clients: int,
    byzantine: tuple[int, ...],
    alphas: tuple[float, ...],
    aggregations: tuple[str, ...],
    attacks: tuple[str, ...],
    seeds: tuple[int, ...],
    epochs: int,
) -> list[tuple[Cell, int, TaskConfig]]:
    """Every run's (cell, seed, config), clean cells first. Building them all up front validates
    the whole grid before the first run."""
    if clients < MIN_CLIENTS:
        raise InputError(
            f"robustness needs --clients >= {MIN_CLIENTS} (got {clients}) so that f up to 6 fits Krum's n > 2f + 2"
        )
    for name, values in (("--byzantine", byzantine), ("--aggregations", aggregations), ("--seeds", seeds)):
        if not values:
            raise InputError(f"robustness needs at least one {name} value")
    for aggregation in aggregations:
        if aggregation not in RULES:
            raise InputError(f"unknown aggregation '{aggregation}'; choose from: {', '.join(RULES)}")
    for attack in attacks:
        get_attack(attack)
    splits = [("iid", None)] + [("dirichlet", alpha) for alpha in alphas]
    runs = []
    for split, alpha in splits:
        for aggregation in aggregations:
            for f in byzantine:
                for attack in (CLEAN, *attacks) if f else (CLEAN,):  # f = 0: no attackers, only the clean run
                    cell = Cell(split, alpha, aggregation, f, attack)
                    for seed in seeds:
                        config = TaskConfig(
                            clients=clients,
                            byzantine=f,
                            attackers=0 if attack == CLEAN else f,
                            attack="sign_flip" if attack == CLEAN else attack,
                            epochs=epochs,
                            split=split,
                            alpha=0.5 if alpha is None else alpha,
                            aggregation=aggregation,
                            seed=seed,
                        )
                        runs.append((cell, seed, config))
    return runs


def run_grid(runs: list[tuple[Cell, int, TaskConfig]], workers: int) -> dict[tuple[Cell, int], RunResult]:
    """Every run's result, in ``workers`` processes (one torch thread each); one progress line per run."""
    results: dict[tuple[Cell, int], RunResult] = {}
    start = time.perf_counter()

    def done(cell: Cell, seed: int, result: RunResult) -> None:
        results[cell, seed] = result
        ratios = outlier_ratios(result.scores, result.byzantine)
        attackers = f", attackers' least {ratios[:, result.attackers].min():.2f}×" if result.attackers else ""
        print(
            f"robustness: [{len(results):>{len(str(len(runs)))}}/{len(runs)}] {cell.data:>5} "
            f"{SHORT_RULE.get(cell.aggregation, cell.aggregation):>3} f={cell.f} {cell.attack:>10} seed {seed}: "
            f"accuracy {result.final_accuracy:.3f}, honest scores up to {ratios[:, result.honest].max():.2f}× "
            f"the reference{attackers} ({time.perf_counter() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    if workers == 1:
        for cell, seed, config in runs:
            done(cell, seed, simulate(config))
    else:
        # spawn, not fork: a forked child inherits torch's thread pools mid-state.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(simulate, config): (cell, seed) for cell, seed, config in runs}
            for future in as_completed(futures):
                done(*futures[future], future.result())
    return {(cell, seed): results[cell, seed] for cell, seed, _ in runs}  # in grid order, as they finished in any


# Statistics: pure functions of one run's scores, or of counts.


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
    """The same for a flag on the movement (:func:`movement`), on each side: moved too far (over the
    (p - f)-th smallest) or too little (the (f + 1)-th smallest over it): the worst honest
    client-epoch, and the median attacker-epoch."""
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


# Sweep: candidates replayed on the choosing seeds, the choice, the judgement on the judging seeds.


def seed_sets(choosing: tuple[int, ...], judging: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two seed sets, each without repeats; refused if either is empty or they share a seed
    (a ratio judged on the seeds it was chosen on says nothing about unseen runs)."""
    choosing, judging = tuple(dict.fromkeys(choosing)), tuple(dict.fromkeys(judging))
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


def on_seeds(results: dict[tuple[Cell, int], RunResult], seeds: tuple[int, ...]) -> dict[tuple[Cell, int], RunResult]:
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


def flag_summary(results: dict[tuple[Cell, int], RunResult], outlier_bps: int) -> dict:
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


def sweep(results: dict[tuple[Cell, int], RunResult], candidates: tuple[int, ...]) -> list[dict]:
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


def judge(results: dict[tuple[Cell, int], RunResult], outlier_bps: int) -> dict:
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


def choice(results: dict[tuple[Cell, int], RunResult], choosing: tuple[int, ...], candidates: tuple[int, ...]) -> dict:
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


def summarize(
    results: dict[tuple[Cell, int], RunResult], choosing: tuple[int, ...], judging: tuple[int, ...], outlier_bps: int
) -> list[dict]:
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
    results: dict[tuple[Cell, int], RunResult],
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


# Report: tables and findings read off the analysis, the plot, the files.


def _pm(value: dict | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _times(bps: int) -> str:
    return f"{bps / 10_000:g}×"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def _epoch(value: int | None) -> str:
    return "never" if value is None else str(value)


def _index(rows: list[dict]) -> dict[tuple, dict]:
    return {(row["data"], row["aggregation"], row["f"], row["attack"]): row for row in rows}


def _in_order(rows: list[dict], key: str) -> list:
    return list(dict.fromkeys(row[key] for row in rows))


def _fs_caught(summary: dict, attack: str) -> str:
    keys = [key for key in summary["iid_epochs_to_flag"] if key.startswith(f"{attack} ")]
    caught = [key.split("=")[1] for key in keys if key in in_time(summary)]
    return ("f = " + ", ".join(caught)) if caught else "none"


def sweep_table(swept: list[dict]) -> str:
    """Per candidate, on the choosing seeds: honest client-epochs flagged (runs with one), attacker-epochs
    flagged per attack, and the IID f whose every attacker was flagged in time."""
    attacks = list(dict.fromkeys(a for row in swept for a in row["per_attack"]))
    detected = [a for a in DETECTED if any(k.startswith(f"{a} ") for row in swept for k in row["iid_epochs_to_flag"])]
    header = ["flag ratio (× reference)", "honest client-epochs flagged (runs)"]
    header += [f"{a}: epochs flagged" for a in attacks]
    header += [f"IID {a}: every attacker flagged by epoch {DETECTION_EPOCHS}" for a in detected]
    body = [
        [_times(row["outlier_bps"]), f"{row['honest_flagged']} ({row['runs_with_honest_flagged']})"]
        + [_pct(row["per_attack"][a]["attackers_flagged_share"]) for a in attacks]
        + [_fs_caught(row, a) for a in detected]
        for row in swept
    ]
    return markdown_table(header, body)


def judgement_table(rows: list[dict]) -> str:
    """Per split and f (both rules, every attack and the clean run): the worst honest ratio on each
    seed set, and on the judging seeds the honest flags, the attackers flagged and paid, and for
    each IID-detected attack the highest ratio that flags every attacker in time."""
    detected = [a for a in DETECTED if a in _in_order(rows, "attack")]
    body = []
    for data in _in_order(rows, "data"):
        for f in _in_order(rows, "f"):
            cells = [row for row in rows if row["data"] == data and row["f"] == f]
            if not cells:
                continue
            attacked = [row for row in cells if row["attackers"]]
            line = [data, str(f)]
            line += [f"{max(row['worst_honest_ratio'][role] for row in cells):.2f}" for role in ("choose", "judge")]
            line.append(
                f"{sum(row['honest_flagged'] for row in cells)} of {sum(row['honest_epochs'] for row in cells)}"
            )
            flagged_ = sum(row["attackers_flagged"] for row in attacked)
            epochs = sum(row["attacker_epochs"] for row in attacked)
            line.append(_pct(share(flagged_, epochs)))
            for attack in detected:
                early = [row["attackers_early_ratio"]["judge"] for row in attacked if row["attack"] == attack]
                line.append(f"{min(early):.2f}" if early else "–")
            body.append(line)
    return markdown_table(
        ["split", "f", "worst honest ratio (choosing seeds)", "worst honest ratio (judging seeds)"]
        + ["honest client-epochs flagged", "attacker-epochs flagged"]
        + [f"{a}: every attacker flagged by epoch {DETECTION_EPOCHS} below" for a in detected],
        body,
    )


def clean_table(rows: list[dict]) -> str:
    """Clean-run accuracy per split, rule and f: the reference each cell's drop is measured from."""
    by = _index(rows)
    columns = [(a, f) for f in _in_order(rows, "f") for a in _in_order(rows, "aggregation")]
    header = ["split"] + [f"{SHORT_RULE.get(a, a)} f={f}" for a, f in columns]
    body = [
        [data]
        + [_pm(by[data, a, f, CLEAN]["final_accuracy"], 3) if (data, a, f, CLEAN) in by else "–" for a, f in columns]
        for data in _in_order(rows, "data")
    ]
    return markdown_table(header, body)


def attack_table(rows: list[dict]) -> str:
    """Per split, f and attack: the rules side by side; flags on the judging seeds."""
    by = _index(rows)
    rules = _in_order(rows, "aggregation")
    header = ["split", "f", "attack"]
    names = ("drop (pts)", "attacker-epochs flagged", "all flagged by epoch", "attackers' share of paid epochs")
    for name in (*names, "attackers' weight"):
        header += [f"{SHORT_RULE.get(a, a)}: {name}" for a in rules]
    header.append("honest client-epochs flagged")
    body = []
    for data in _in_order(rows, "data"):
        for f in _in_order(rows, "f"):
            for attack in _in_order(rows, "attack"):
                cells = [by.get((data, a, f, attack)) for a in rules]
                if attack == CLEAN or None in cells:
                    continue
                line = [data, str(f), attack] + [_pm(c["drop_points"]) for c in cells]
                line += [_pct(c["attackers_flagged_share"]) for c in cells]
                line += [_epoch(c["epochs_to_flag_all"]) for c in cells]
                line += [_pct(c["attackers_paid_share"]) for c in cells]
                line += [_pct(c["attacker_weight"]) for c in cells]
                line.append(str(sum(c["honest_flagged"] for c in cells)))
                body.append(line)
    return markdown_table(header, body)


def movement_table(rows: list[dict]) -> str:
    """Per split (every f and seed): the movement's worst honest client-epoch on each side, against
    the median attacker-epoch of the attacks that side would be for."""
    attacks = _in_order(rows, "attack")
    columns = [("far", a) for a in DETECTED if a in attacks] + [("little", a) for a in MOVED_LITTLE if a in attacks]
    body = []
    for data in _in_order(rows, "data"):
        cells = [row for row in rows if row["data"] == data]
        line = [data] + [f"{max(row[f'movement_honest_{side}'] for row in cells):.2f}" for side in ("far", "little")]
        for side, attack in columns:
            values = [row[f"movement_attackers_{side}"] for row in cells if row["attack"] == attack]
            line.append(f"{float(np.median(values)):.2f}" if values else "–")
        body.append(line)
    return markdown_table(
        ["split", "honest: worst (too far)", "honest: worst (too little)"]
        + [f"{attack}: median (too {side})" for side, attack in columns],
        body,
    )


def movement_finding(rows: list[dict]) -> str:
    """Whether the movement separates the attackers a Krum score does not: per attack, on how many
    splits its median attacker-epoch lies beyond every honest client-epoch of that split."""
    attacks = _in_order(rows, "attack")
    parts = []
    for side, names in (("far", DETECTED), ("little", MOVED_LITTLE)):
        for attack in (a for a in names if a in attacks):
            beyond = [
                data
                for data in _in_order(rows, "data")
                if np.median(
                    [r[f"movement_attackers_{side}"] for r in rows if r["data"] == data and r["attack"] == attack]
                )
                > max(r[f"movement_honest_{side}"] for r in rows if r["data"] == data)
            ]
            parts.append(f"{attack} (too {side}) on {', '.join(beyond) if beyond else 'none'}")
    return (
        "- **A second statistic, tried: how far each client moved from the global model it trained from** (a proof "
        "could take the previous aggregate as an input; see the movement table). The splits on which an attack's "
        "median attacker-epoch lies beyond every honest client-epoch: " + "; ".join(parts) + "."
    )


def choice_finding(chosen: dict) -> str:
    """How the ratio was chosen, in numbers."""
    seeds, swept, bps = _seeds(chosen["seeds"]), chosen["candidates"], chosen["chosen_outlier_bps"]
    if bps is None:
        return (
            f"- **The flag ratio, chosen on seeds {seeds}:** none; every candidate up to "
            f"{_times(swept[-1]['outlier_bps'])} flags an honest client there, so the largest is judged."
        )
    first = next(row for row in swept if row["outlier_bps"] == chosen["smallest_safe_bps"])
    below = [row for row in swept if row["outlier_bps"] < first["outlier_bps"]]
    text = (
        f"- **The flag ratio, chosen on seeds {seeds}: {_times(bps)} the reference score.** The smallest candidate "
        f"that flags no honest client in any of their {first['runs']} runs is {_times(first['outlier_bps'])}"
    )
    if below:
        text += (
            f" ({_times(below[-1]['outlier_bps'])} flags {below[-1]['honest_flagged']} honest client-epochs in "
            f"{below[-1]['runs_with_honest_flagged']} runs: {', '.join(below[-1]['where_honest_flagged'][:4])}"
            + (" …" if len(below[-1]["where_honest_flagged"]) > 4 else "")
            + ")"
        )
    caught = in_time(first)
    if not caught:
        return text + f". It flags no IID attacker within {DETECTION_EPOCHS} epochs, so nothing bounds a margin: none."
    text += (
        f". The margin rule raises it as long as every IID attacker it flags within {DETECTION_EPOCHS} epochs "
        f"({', '.join(sorted(caught))}) still is"
    )
    above = next((row for row in swept if row["outlier_bps"] > bps), None)
    if above is not None:
        lost = sorted(caught - in_time(above))
        text += f": {_times(above['outlier_bps'])} loses {', '.join(lost)}"
    return text + (f", so {_times(bps)}." if bps != first["outlier_bps"] else ": no margin.")


def judgement_finding(judged: dict, seeds: list[int], label: str) -> str:
    """The held-out verdict on one ratio, in numbers."""
    clean = judged["without_attackers"]
    return (
        f"- **{label}, judged on seeds {_seeds(seeds)} (held out):** {judged['honest_flagged']} of "
        f"{judged['honest_epochs']:,} honest client-epochs flagged (rate {judged['honest_flagged_rate']:.2e}; one-sided "
        f"{CONFIDENCE:.0%} upper bound {judged['honest_flagged_upper']:.2e}, Clopper-Pearson"
        + (", the rule of three" if judged["honest_flagged"] == 0 else "")
        + f"), in {judged['runs_with_honest_flagged']} of {judged['runs']:,} runs (upper bound "
        f"{judged['runs_with_honest_flagged_upper']:.2e} per run, the bound that does not assume a run's client-epochs "
        f"independent). The worst honest ratio there: {judged['worst_honest_ratio']:.2f}× ({judged['worst_honest_run']}), "
        f"a margin of {judged['margin']:.2f} of the ratio"
        + (" (under 1: no honest client flagged)" if judged["margin"] <= 1 else "")
        + (f"; flagged in: {', '.join(judged['where_honest_flagged'])}" if judged["where_honest_flagged"] else "")
        + f". In the runs without attackers: {clean['honest_flagged']} of {clean['honest_epochs']:,} honest "
        f"client-epochs flagged (upper bound {clean['honest_flagged_upper']:.2e})."
    )


def cost_finding(judged: dict, swept: list[dict]) -> str | None:
    """When the held-out seeds flag an honest client: what a ratio above their worst honest one
    would have caught on the choosing seeds (read off the sweep, not chosen on the judging seeds)."""
    if judged["margin"] <= 1:
        return None
    above = next((row for row in swept if row["outlier_bps"] > judged["worst_honest_ratio"] * 10_000), None)
    if above is None:
        return "- **To flag no honest client on the judging seeds** a ratio above every candidate would be needed."
    return (
        f"- **To flag no honest client on the judging seeds** the ratio would have to exceed "
        f"{judged['worst_honest_ratio']:.2f}×; the sweep's next candidate, {_times(above['outlier_bps'])}, flags on "
        f"the choosing seeds {_pct(above['attackers_flagged_share'], 1)} of the attacker-epochs (noise "
        f"{_pct(above['per_attack'].get('noise', {}).get('attackers_flagged_share'), 1)}) and in time every IID "
        f"attacker of: {', '.join(sorted(in_time(above))) or 'none'}."
    )


def attackers_finding(judged: dict, seeds: list[int]) -> list[str]:
    """What the attackers lost and earned under the judged ratio on the judging seeds."""
    per_attack = judged["per_attack"]
    lines = [
        f"- **Attackers flagged (seeds {_seeds(seeds)}, at {_times(judged['outlier_bps'])}):** "
        f"{_pct(judged['attackers_flagged_share'], 1)} of all attacker-epochs; per attack: "
        + ", ".join(f"{a} {_pct(v['attackers_flagged_share'], 1)}" for a, v in per_attack.items())
        + ". **What they earned:** the share of the paid client-epochs that went to attackers, against their share "
        "of all client-epochs: "
        + ", ".join(
            f"{a} {_pct(v['attackers_paid_share'], 1)} ({_pct(v['attackers_client_share'], 1)})"
            for a, v in per_attack.items()
        )
        + "."
    ]
    detection = judged["iid_epochs_to_flag"]
    if detection:
        caught = in_time(judged)
        lines.append(
            f"- **IID {', '.join(a for a in DETECTED if any(k.startswith(a + ' ') for k in detection))}: every "
            f"attacker flagged within the first {DETECTION_EPOCHS} epochs** (every held-out run, either rule): "
            + ("met" if caught == set(detection) else "missed")
            + f" (caught in time: {', '.join(k for k in detection if k in caught) or 'none'}; not: "
            + (
                ", ".join(
                    f"{k} ({'never' if e is None else f'by epoch {e}'})"
                    for k, e in detection.items()
                    if k not in caught
                )
                or "none"
            )
            + ")."
        )
    return lines


def framing_finding(rows: list[dict]) -> str:
    """Why a Krum-score ratio cannot slash: the worst honest ratio per split, by f, where colluders lower the reference."""
    worst = {}
    for row in rows:
        key = (row["data"], row["f"])
        worst[key] = max(worst.get(key, 0.0), *row["worst_honest_ratio"].values())
    peak = max(worst, key=worst.get)
    data = peak[0]
    fs = sorted(f for d, f in worst if d == data)
    top = max(
        (row for row in rows if row["data"] == data and row["f"] == peak[1]),
        key=lambda r: max(r["worst_honest_ratio"].values()),
    )
    return (
        f"- **Why a flag is not a slash.** The worst honest ratio (any seed, rule and attack) on {data} data by f: "
        + ", ".join(f"f={f} {worst[data, f]:.2f}×" for f in fs)
        + f"; the highest, {worst[peak]:.2f}×, under {top['attack']} ({SHORT_RULE.get(top['aggregation'])}). "
        "Colluders that cluster take the smallest scores and lower the reference, so an honest client with "
        "one-class data becomes the outlier: the honest clients' own spread bounds their ratio, and non-IID data "
        "leaves it unbounded. A flag costs that client an unpaid epoch, never stake."
    )


def accuracy_findings(rows: list[dict]) -> list[str]:
    """The accuracy targets at the target split: NNM keeps plain attacks close to the clean run, and halves crafted ones' damage."""
    by = _index(rows)
    target = f"α={TARGET_ALPHA:g}"
    fs = [f for f in _in_order(rows, "f") if f]
    lines = []
    close = [
        (a, f, by[target, NNM_MULTIKRUM, f, a]) for f in fs for a in KEPT_CLOSE if (target, NNM_MULTIKRUM, f, a) in by
    ]
    if close:
        missed = [
            (a, f, row["drop_points"]["mean"]) for a, f, row in close if row["drop_points"]["mean"] > TARGET_POINTS
        ]
        lines.append(
            f"- **{target}: {', '.join(KEPT_CLOSE)} within {TARGET_POINTS:g} points of the clean run with NNM + "
            f"Multi-Krum, f = {fs[0]}–{fs[-1]}**: "
            + ("met" if not missed else f"missed in {len(missed)} of {len(close)} (attack, f)")
            + (": " + ", ".join(f"{a} f={f} {d:.1f}" for a, f, d in missed) if missed else "")
            + f"; worst mean drop {max(row['drop_points']['mean'] for _, _, row in close):.1f} points."
        )
    verdicts = {"met": [], "missed": [], "nothing to halve": []}
    for f in fs:
        for attack in CRAFTED:
            mk, nnm = by.get((target, MULTIKRUM, f, attack)), by.get((target, NNM_MULTIKRUM, f, attack))
            if mk and nnm:
                mk_drop, nnm_drop = mk["drop_points"]["mean"], nnm["drop_points"]["mean"]
                verdict = (
                    "nothing to halve" if mk_drop < NOISE_POINTS else "met" if nnm_drop <= mk_drop / 2 else "missed"
                )
                verdicts[verdict].append(f"{attack} f={f} ({mk_drop:.1f} → {nnm_drop:.1f})")
    if any(verdicts.values()):
        lines.append(
            f"- **{target}: ALIE and IPM damage with NNM at most half of Multi-Krum's** (mean drop, points, "
            "Multi-Krum → NNM): "
            + "; ".join(f"{name} in {len(items)}: {', '.join(items)}" for name, items in verdicts.items() if items)
            + f" (nothing to halve: Multi-Krum loses under {NOISE_POINTS:g} points)."
        )
    return lines


def findings(analysis: dict) -> list[str]:
    chosen, judgement, rows = analysis["choice"], analysis["judgement"], analysis["rows"]
    label = f"{_times(judgement['chosen']['outlier_bps'])}"
    lines = [choice_finding(chosen), judgement_finding(judgement["chosen"], judgement["seeds"], label)]
    if "smallest_safe" in judgement:
        lines.append(
            judgement_finding(
                judgement["smallest_safe"],
                judgement["seeds"],
                f"Without the margin, {_times(judgement['smallest_safe']['outlier_bps'])}",
            )
        )
    cost = cost_finding(judgement["chosen"], chosen["candidates"])
    lines += ([cost] if cost else []) + attackers_finding(judgement["chosen"], judgement["seeds"])
    lines.append(framing_finding(rows))
    return lines + accuracy_findings(rows) + [movement_finding(rows)]


def setup_text(settings: dict) -> str:
    fs = settings["byzantine"]
    return (
        f"n={settings['clients']} clients, {settings['epochs']} epochs; data IID and Dirichlet "
        f"α ∈ {{{', '.join(f'{a:g}' for a in settings['alphas'])}}}; f ∈ {{{', '.join(map(str, fs))}}} attackers "
        "with Krum set to the same f (m = n − f; f = 0 is the clean run only, where both rules are the plain mean); "
        "rules: "
        + ", ".join(f"{SHORT_RULE.get(a, a)} = {a}" for a in settings["aggregations"])
        + f"; attacks: {', '.join(settings['attacks'])}. The flag ratio is chosen on seeds "
        f"{_seeds(settings['choosing_seeds'])} and judged on seeds {_seeds(settings['judging_seeds'])}, never the "
        "same. Flag: a raw Krum score above the ratio times the epoch's reference score (the (p − f)-th smallest "
        "of the p present clients' scores); a flagged epoch is unpaid. Counted in client-epochs. Drop: the clean "
        "run's final accuracy minus the attacked run's (same split, rule, f and seed), in points, mean ± std over all "
        "seeds; the flag figures per cell are the judging seeds'; attackers' weight: their share of the aggregate "
        f"over the run (Multi-Krum: selected attackers / m). {settings['runs']:,} runs in {settings['grid_seconds']} s "
        f"({settings['workers']} worker processes)."
    )


def report_text(settings: dict, analysis: dict) -> str:
    """``robustness.md``, every sentence and figure from ``settings`` and ``analysis``."""
    judged_bps = analysis["judgement"]["chosen"]["outlier_bps"]
    return "\n".join(
        [
            "# Robustness: Multi-Krum, NNM + Multi-Krum and the flag rule against each attack",
            "",
            setup_text(settings),
            "",
            "**Honest clients slashed: 0, by construction.** A slash needs two different commitments signed by one "
            "client for one task and epoch, proven on chain by the two signatures; an honest client's signer never "
            "signs twice. Krum scores only flag, and a flagged epoch is unpaid, so the grid measures flags.",
            "",
            "## Findings",
            "",
            "\n".join(findings(analysis)),
            "",
            f"## The choice: every candidate on the choosing seeds ({_seeds(analysis['choice']['seeds'])})",
            "",
            sweep_table(analysis["choice"]["candidates"]),
            "",
            f"## The judgement per split and f (flags at {_times(judged_bps)} on the judging seeds, "
            f"{_seeds(analysis['judgement']['seeds'])})",
            "",
            "Worst honest ratio: the highest raw score over its reference of any honest client-epoch (any ratio at or "
            "above it flags no honest client). The last columns: the highest ratio under which every attacker of "
            f"every judging run was flagged within {DETECTION_EPOCHS} epochs.",
            "",
            judgement_table(analysis["rows"]),
            "",
            "## A second statistic: the movement",
            "",
            "How far each client moved from the global model it trained from (the squared distance between the "
            "quantized models), the statistic a proof could add next, as a ratio on each side: too far over the "
            "(p − f)-th smallest movement, or too little, the (f + 1)-th smallest over the movement. Every f and seed.",
            "",
            movement_table(analysis["rows"]),
            "",
            "## Clean runs (final accuracy, mean ± std over all seeds)",
            "",
            clean_table(analysis["rows"]),
            "",
            "## Every attack",
            "",
            attack_table(analysis["rows"]),
            "",
            "![robustness](robustness.png)",
            "",
        ]
    )


def plot(analysis: dict, path: Path) -> None:
    """Per split, against f: each cell's worst honest ratio on the choosing and on the judging seeds,
    and its attackers' median ratio, with the judged flag ratio as a line (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, bps = analysis["rows"], analysis["judgement"]["chosen"]["outlier_bps"]
    splits = _in_order(rows, "data")
    columns = min(2, len(splits))
    lines = -(-len(splits) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(6 * columns, 3.8 * lines + 0.6), squeeze=False, sharey=True)
    jitter = np.random.default_rng(0)
    series = (
        ("honest, choosing seeds", "worst_honest_ratio", "choose", "o", "C0", -0.15),
        ("honest, judging seeds", "worst_honest_ratio", "judge", "x", "C1", 0.15),
        ("attackers (median attacker-epoch), judging seeds", "attackers_median_ratio", "judge", "^", "grey", 0.0),
    )
    for axis in axes.flat[len(splits) :]:
        axis.set_visible(False)
    for axis, data in zip(axes.flat, splits):
        cells = [row for row in rows if row["data"] == data]
        for label, key, role, marker, color, offset in series:
            points = [(row["f"], row[key][role]) for row in cells if row[key][role] is not None]
            xs = [f + offset + jitter.uniform(-0.08, 0.08) for f, _ in points]
            axis.scatter(
                xs, [max(y, 0.01) for _, y in points], marker=marker, s=14, color=color, alpha=0.6, label=label
            )
        axis.axhline(bps / 10_000, color="red", linestyle="--", linewidth=1, label=f"flag ratio {_times(bps)}")
        axis.set_yscale("log")
        axis.set_title(data, fontsize=10)
        axis.set_xlabel("f")
        axis.grid(True, alpha=0.3)
    for line in axes:
        line[0].set_ylabel("raw Krum score / reference")
    axes[0][0].legend(fontsize=7, loc="upper left")
    figure.suptitle("Each cell's worst honest client against the flag ratio, and its attackers", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def write_results(out: Path, settings: dict, analysis: dict) -> None:
    """``out/robustness.{json,md,png}``."""
    out = Path(out)
    write_json_atomic(out / "robustness.json", {"settings": settings, **analysis})
    write_bytes_atomic(out / "robustness.md", report_text(settings, analysis).encode())
    plot(analysis, out / "robustness.png")


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
    """Run the grid, print one line per run, choose the flag ratio on the choosing seeds and judge
    it on the judging seeds, write ``out/robustness.{json,md,png}``; return the analysis
    (:func:`analyse`)."""
    if workers < 1:
        raise InputError(f"robustness needs --workers >= 1, got {workers}")
    choosing, judging = seed_sets(choosing_seeds, judging_seeds)
    candidates = tuple(sorted(set(candidates)))
    if not candidates or not all(10_000 <= bps <= 2**32 for bps in candidates):
        raise InputError("robustness needs candidate flag ratios in 10000..2^32 ten-thousandths of the reference")
    byzantine, alphas = tuple(dict.fromkeys(byzantine)), tuple(dict.fromkeys(alphas))
    aggregations, attacks = tuple(dict.fromkeys(aggregations)), tuple(dict.fromkeys(attacks))
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
    print("\n".join(findings(analysis)))
    return analysis
