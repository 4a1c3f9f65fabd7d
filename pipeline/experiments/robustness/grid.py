"""The grid of runs: every (cell, seed) validated and configured up front, then run in a pool of
processes, one progress line per run.

The grid: split (IID, Dirichlet alpha per value) x rule x f (attackers = f, Krum set to the same
f, m = n - f; f = 0 runs clean only) x attack (the clean run first) x seed; each run is compared
with the clean run of the same split, rule, f and seed.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed

from stakelearn.circuits.krum import RULES
from stakelearn.errors import InputError
from stakelearn.pipeline.experiments.robustness.simulation import CLEAN, SHORT_RULE, Cell, RunResult, simulate
from stakelearn.pipeline.experiments.robustness.statistics import outlier_ratios
from stakelearn.pipeline.federation.attacks import get_attack
from stakelearn.pipeline.federation.task import TaskConfig

log = logging.getLogger(__name__)

MIN_CLIENTS = 16  # below this, f=6 (the interesting end) breaks Krum's n > 2f + 2

Run = tuple[Cell, int, TaskConfig]
Results = dict[tuple[Cell, int], RunResult]  # in grid order


def distinct(name: str, values: tuple) -> tuple:
    """``values`` as given, refused if one is given twice (a repeated cell would run twice and
    count once)."""
    repeated = [value for value, count in Counter(values).items() if count > 1]
    if repeated:
        raise InputError(f"robustness needs each {name} value once; repeated: {', '.join(map(str, repeated))}")
    return tuple(values)


def check_grid(
    clients: int, byzantine: tuple, alphas: tuple, aggregations: tuple, attacks: tuple, seeds: tuple
) -> None:
    """Refuse a grid that cannot run, in one line, before any run."""
    if clients < MIN_CLIENTS:
        raise InputError(
            f"robustness needs --clients >= {MIN_CLIENTS} (got {clients}) so that f up to 6 fits Krum's n > 2f + 2"
        )
    for name, values in (("--byzantine", byzantine), ("--aggregations", aggregations), ("--seeds", seeds)):
        if not values:
            raise InputError(f"robustness needs at least one {name} value")
    for name, values in (
        ("--byzantine", byzantine),
        ("--alphas", alphas),
        ("--aggregations", aggregations),
        ("--attacks", attacks),
    ):
        distinct(name, values)
    for aggregation in aggregations:
        if aggregation not in RULES:
            raise InputError(f"unknown aggregation '{aggregation}'; choose from: {', '.join(RULES)}")
    for attack in attacks:
        get_attack(attack)


def grid(
    clients: int,
    byzantine: tuple[int, ...],
    alphas: tuple[float, ...],
    aggregations: tuple[str, ...],
    attacks: tuple[str, ...],
    seeds: tuple[int, ...],
    epochs: int,
) -> list[Run]:
    """Every run's (cell, seed, config), clean cells first. Building them all up front validates
    the whole grid before the first run."""
    check_grid(clients, byzantine, alphas, aggregations, attacks, seeds)
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


def progress_line(done: int, total: int, cell: Cell, seed: int, result: RunResult, seconds: float) -> str:
    """One run's progress line: its accuracy and how its honest clients and attackers scored."""
    ratios = outlier_ratios(result.scores, result.byzantine)
    attackers = f", attackers' least {ratios[:, result.attackers].min():.2f}×" if result.attackers else ""
    return (
        f"robustness: [{done:>{len(str(total))}}/{total}] {cell.data:>5} "
        f"{SHORT_RULE.get(cell.aggregation, cell.aggregation):>3} f={cell.f} {cell.attack:>10} seed {seed}: "
        f"accuracy {result.final_accuracy:.3f}, honest scores up to {ratios[:, result.honest].max():.2f}× "
        f"the reference{attackers} ({seconds:.0f} s)"
    )


def run_grid(runs: list[Run], workers: int) -> Results:
    """Every run's result, in ``workers`` processes (one torch thread each); one progress line per run."""
    results: Results = {}
    start = time.perf_counter()

    def done(cell: Cell, seed: int, result: RunResult) -> None:
        results[cell, seed] = result
        log.info(progress_line(len(results), len(runs), cell, seed, result, time.perf_counter() - start))

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
