"""The federated task's arithmetic, shared by the proven demo and the robustness experiment.

One epoch: every client trains from the global model on its shard; attackers replace their
update by their attack's; updates are quantized to the task's fixed point; Multi-Krum selects
``m``; the next global model is the previous one plus the mean of the selected updates. The
same functions run with proofs and a chain (``pipeline.demo``) or without (``pipeline.robustness``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from stakelearn.circuits.krum import KrumParams
from stakelearn.errors import InputError
from stakelearn.models.digits import (
    Dataset, LocalTraining, load_digits_split, parameter_count, split_dirichlet, split_iid, train_local,
)
from stakelearn.models.quantize import FixedPoint, dequantize
from stakelearn.pipeline.attacks import AttackView, flip_labels, get_attack

SPLITS = ("iid", "dirichlet")

# Updates are small (median |x| ~ 0.02 after the first epoch): 2^-9 resolution, clipped to +-0.5.
TASK_FIXED_POINT = FixedPoint(scale_bits=9, clip=0.5)


@dataclass(frozen=True)
class TaskConfig:
    """A federated task on the digits data: who takes part, who attacks, how clients train."""

    clients: int = 8
    byzantine: int = 2  # f, the attackers Krum is configured to tolerate
    attackers: int = 2  # how many clients actually attack (the last ones)
    attack: str = "sign_flip"
    epochs: int = 5
    split: str = "iid"
    alpha: float = 0.5  # Dirichlet concentration of the non-IID split
    select: int | None = None  # m; default n - f
    hidden: int = 0
    seed: int = 0
    test_fraction: float = 0.2
    fixed_point: FixedPoint = TASK_FIXED_POINT
    training: LocalTraining = field(default_factory=LocalTraining)

    def __post_init__(self) -> None:
        self.krum  # validates n, f, m
        if not 0 <= self.attackers <= self.byzantine:
            raise InputError(
                f"{self.attackers} attackers exceed the Krum bound f={self.byzantine}: with n={self.clients}, "
                f"Krum tolerates at most f attackers; lower --attackers or raise --byzantine (n > 2f+2)"
            )
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.split not in SPLITS:
            raise InputError(f"unknown split '{self.split}'; choose one of: {', '.join(SPLITS)}")
        if self.attackers:
            get_attack(self.attack)

    @property
    def krum(self) -> KrumParams:
        m = self.select if self.select is not None else self.clients - self.byzantine
        return KrumParams(self.clients, self.byzantine, m)

    @property
    def attacker_ids(self) -> list[int]:
        return list(range(self.clients - self.attackers, self.clients))

    @property
    def dimension(self) -> int:
        return parameter_count(self.hidden)


@dataclass(frozen=True)
class Federation:
    """The task's data: each client's shard and the held-out test set."""

    config: TaskConfig
    shards: list[Dataset]
    test: Dataset


def make_federation(config: TaskConfig) -> Federation:
    train, test = load_digits_split(config.test_fraction, config.seed)
    rng = np.random.default_rng(config.seed)
    if config.split == "iid":
        parts = split_iid(train.y, config.clients, rng)
    else:
        parts = split_dirichlet(train.y, config.clients, config.alpha, rng)
    return Federation(config, [train.subset(p) for p in parts], test)


def _seed(config: TaskConfig, epoch: int, client: int) -> int:
    return zlib.crc32(f"{config.seed}/{epoch}/{client}".encode())


def client_updates(federation: Federation, global_parameters: np.ndarray, epoch: int) -> np.ndarray:
    """Every client's float update (trained minus global) for ``epoch``, attackers' included."""
    config = federation.config
    attack = get_attack(config.attack) if config.attackers else None
    attackers = set(config.attacker_ids)
    updates = []
    for client, shard in enumerate(federation.shards):
        if client in attackers and attack.flips_labels:
            shard = Dataset(shard.x, flip_labels(shard.y))
        trained = train_local(global_parameters, shard, config.hidden, config.training, _seed(config, epoch, client))
        updates.append(trained - global_parameters)
    updates = np.stack(updates)
    honest = np.delete(updates, config.attacker_ids, axis=0)
    for client in config.attacker_ids:
        view = AttackView(updates[client], honest, config.clients, config.attackers,
                          np.random.default_rng(_seed(config, epoch, client)))
        updates[client] = attack.craft(view)
    return updates


def next_global(global_parameters: np.ndarray, selected_sum: np.ndarray, m: int, fixed_point: FixedPoint) -> np.ndarray:
    """The next global model: the previous plus the mean of the ``m`` selected quantized updates."""
    return global_parameters + dequantize(selected_sum, fixed_point) / m


def duplicate_mask(quantized: np.ndarray) -> np.ndarray:
    """Clients whose update equals another's in the same epoch (all copies), as the rollup flags."""
    _, inverse, counts = np.unique(np.asarray(quantized), axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()] > 1


def flagged(scores: np.ndarray, selected: np.ndarray, quantized: np.ndarray, outlier_bps: int) -> np.ndarray:
    """The rollup's flags (MPSRollup's rule): a client is flagged when Multi-Krum left it out and
    its score exceeds ``outlier_bps / 10000`` times the largest selected score, or when its
    update duplicates another's. Multi-Krum always leaves out n - m clients, honest ones too
    when fewer attack; the outlier test keeps those from being flagged."""
    scores = np.asarray(scores, dtype=object)  # exact integers, as on chain
    selected = np.asarray(selected, dtype=bool)
    reference = max(scores[selected])
    outliers = np.array([(not keep) and score * 10_000 > reference * outlier_bps for score, keep in zip(scores, selected)])
    return outliers | duplicate_mask(quantized)
