"""One run of the grid: the numpy reference of the proven pipeline, minus proofs and chain.

Every epoch the clients train, attackers craft their updates, updates are quantized, the task's
rule (Multi-Krum, or nearest-neighbour mixing then Multi-Krum) aggregates, and the global model
moves to the aggregate. Each run keeps its raw Krum scores, what the chain flags on, so the flag
rule can be replayed for any outlier ratio after the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from stakelearn.circuits.krum import MULTIKRUM, NNM_MULTIKRUM, krum_round
from stakelearn.models.digits import accuracy, initial_parameters, one_torch_thread
from stakelearn.models.quantize import quantize
from stakelearn.pipeline.federation.task import TaskConfig, client_models, make_federation, next_global

CLEAN = "none"  # the grid's name for the run without attackers
SHORT_RULE = {MULTIKRUM: "MK", NNM_MULTIKRUM: "NNM"}


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
