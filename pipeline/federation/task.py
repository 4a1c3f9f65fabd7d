"""The federated task's arithmetic, shared by the proven demo and the robustness experiment.

One epoch: every client trains from the global model on its shard; attackers replace their
update (trained minus global) by their attack's; each client sends its model (global plus
update) quantized to the task's fixed point; Multi-Krum selects ``m``; the next global model
is the mean of the selected models. Krum's distances between models equal those between
updates (all start from the same global model), and the proven aggregate, whose commitment
the chain records, is then the global model itself (times ``m``), not a change to it.
The same functions run with proofs and a chain (``pipeline.node.task_lifecycle``) or without
(``pipeline.experiments.robustness``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from stakelearn.circuits.accuracy import GREY_LEVELS, SOFTMAX, Classifier
from stakelearn.circuits.krum import KrumParams
from stakelearn.errors import InputError
from stakelearn.models.digits import (
    MLP_HIDDEN,
    Dataset,
    LocalTraining,
    load_digits_split,
    parameter_count,
    split_dirichlet,
    split_iid,
    train_local,
)
from stakelearn.models.quantize import FixedPoint, dequantize
from stakelearn.pipeline.federation.attacks import (
    AggregateFunction,
    AttackView,
    flip_labels,
    get_attack,
    task_aggregator,
)

SPLITS = ("iid", "dirichlet")
OMNISCIENT_ATTACKS = ("alie", "ipm", "alie_opt", "ipm_opt", "mimic")  # they craft from the honest updates

# Models: 2^-9 resolution (an epoch's update has median |x| ~ 0.02), clipped to +-2 (weights
# measured at most 1.35 after 20 epochs, IID and non-IID).
TASK_FIXED_POINT = FixedPoint(scale_bits=9, clip=2.0)

# The task's models: softmax regression (650 parameters) or the MLP (models.digits.MLP_HIDDEN).
MODELS = ("softmax", "mlp")
MLP_CHUNK = 1024  # the MLP's rounds in 10 chunks; a chunk proof of n=8 fits a 2 GB prover
MLP_ACCURACY_BATCH = 4  # the MLP's samples per accuracy proof at the chunk circuit's logrows


def model_options(model: str, chunk: int | None = None, accuracy_batch: int | None = None) -> dict:
    """The ``hidden``, ``chunk`` and ``accuracy_batch`` of a task (:class:`TaskConfig`) whose model is
    ``model``: softmax regression in one proof unless ``chunk`` says otherwise; the MLP always in
    chunks (default :data:`MLP_CHUNK`), its accuracy a few samples per proof (default
    :data:`MLP_ACCURACY_BATCH`). A ``chunk`` or ``accuracy_batch`` of None or 0 is the model's default."""
    if model not in MODELS:
        raise InputError(f"unknown model '{model}'; choose one of: {', '.join(MODELS)}")
    mlp = model == "mlp"
    return {
        "hidden": MLP_HIDDEN if mlp else 0,
        "chunk": chunk or (MLP_CHUNK if mlp else 0),
        "accuracy_batch": accuracy_batch or (MLP_ACCURACY_BATCH if mlp else 0),
    }


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
    aggregation: str = "multikrum"  # or "nnm-multikrum" (circuits.krum.RULES), fixed on chain at creation
    verification: str = "eager"  # or "optimistic" (rounds proven only when challenged), fixed at creation
    hidden: int = 0
    seed: int = 0
    test_fraction: float = 0.2
    evaluation_samples: int = 64  # the requester's private evaluation set, proven on at the end
    target_accuracy: float = 0.85
    fixed_point: FixedPoint = TASK_FIXED_POINT
    training: LocalTraining = field(default_factory=LocalTraining)
    chunk: int = 0  # prove each round in chunks of this many coordinates (0: one proof)
    accuracy_batch: int = 0  # prove the final accuracy this many samples per proof (0: the whole set in one)

    def __post_init__(self) -> None:
        _ = self.krum  # KrumParams validates n, f and m
        if self.chunk < 0:
            raise InputError(f"chunk size must be >= 1 (or 0 for one proof per round), got {self.chunk}")
        if self.chunk and self.krum.mixes:
            raise InputError(
                "an nnm-multikrum round is proven in one proof (chunked rounds prove Multi-Krum): drop --chunk, "
                "or use --aggregation multikrum"
            )
        if not 0 <= self.attackers <= self.byzantine:
            raise InputError(
                f"{self.attackers} attackers exceed the Krum bound f={self.byzantine}: with n={self.clients}, "
                f"Krum tolerates at most f attackers; lower --attackers or raise --byzantine (n > 2f+2)"
            )
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise InputError(f"target accuracy must be in (0, 1], got {self.target_accuracy}")
        if not 1 <= self.evaluation_samples <= 300:
            raise InputError(f"evaluation samples must be in 1..300 (the held-out set), got {self.evaluation_samples}")
        if self.accuracy_batch < 0 or (self.accuracy_batch and self.evaluation_samples % self.accuracy_batch):
            raise InputError(
                f"the accuracy batch ({self.accuracy_batch}) must divide the evaluation samples "
                f"({self.evaluation_samples}): choose a divisor of it"
            )
        if self.split not in SPLITS:
            raise InputError(f"unknown split '{self.split}'; choose one of: {', '.join(SPLITS)}")
        if self.attackers:
            get_attack(self.attack)

    @property
    def samples_per_proof(self) -> int:
        return self.accuracy_batch or self.evaluation_samples

    @property
    def classifier(self) -> Classifier:
        """What the accuracy circuit evaluates: the aggregate (weights adding up to ``krum.weight``)
        of models at 2^-s is ``krum.weight * 2^s`` times the model."""
        return Classifier(self.hidden, self.krum.weight * 2**self.fixed_point.scale_bits) if self.hidden else SOFTMAX

    @property
    def krum(self) -> KrumParams:
        m = self.select if self.select is not None else self.clients - self.byzantine
        return KrumParams(self.clients, self.byzantine, m, self.aggregation)

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


def evaluation_set(federation: Federation) -> tuple[np.ndarray, np.ndarray]:
    """The requester's evaluation set: the first held-out samples, pixels as grey levels 0..16."""
    n = federation.config.evaluation_samples
    pixels = np.rint(federation.test.x[:n] * GREY_LEVELS).astype(np.int64)
    return pixels, federation.test.y[:n].astype(np.int64)


def _seed(config: TaskConfig, epoch: int, client: int) -> int:
    return zlib.crc32(f"{config.seed}/{epoch}/{client}".encode())


def trained_update(federation: Federation, global_parameters: np.ndarray, epoch: int, client: int) -> np.ndarray:
    """A client's float update (trained minus global) from training on its shard; a label
    flipper trains on flipped labels."""
    config, shard = federation.config, federation.shards[client]
    if config.attackers and client in config.attacker_ids and get_attack(config.attack).flips_labels:
        shard = Dataset(shard.x, flip_labels(shard.y))
    trained = train_local(global_parameters, shard, config.hidden, config.training, _seed(config, epoch, client))
    return trained - global_parameters


def attack_view(
    config: TaskConfig,
    own: np.ndarray,
    honest: np.ndarray,
    epoch: int,
    client: int,
    aggregate: AggregateFunction | None = None,
    coalition: dict | None = None,
) -> AttackView:
    rng = np.random.default_rng(_seed(config, epoch, client))
    return AttackView(
        own, honest, config.clients, config.attackers, rng, aggregate, {} if coalition is None else coalition
    )


def client_updates(federation: Federation, global_parameters: np.ndarray, epoch: int) -> np.ndarray:
    """Every client's float update (trained minus global) for ``epoch``, attackers' included. The
    attackers collude: they see the honest updates and the task's rule, and share one coalition."""
    config = federation.config
    updates = np.stack([trained_update(federation, global_parameters, epoch, c) for c in range(config.clients)])
    honest = np.delete(updates, config.attacker_ids, axis=0)
    aggregate = task_aggregator(config.krum, config.fixed_point, global_parameters)
    coalition: dict = {}
    for client in config.attacker_ids:
        view = attack_view(config, updates[client], honest, epoch, client, aggregate, coalition)
        updates[client] = get_attack(config.attack).craft(view)
    return updates


def lone_client_model(federation: Federation, global_parameters: np.ndarray, epoch: int, client: int) -> np.ndarray:
    """What one client sends for ``epoch`` when it sees only its own data, as on a federation's
    own node: attacks that need the honest clients' updates (alie, ipm) are refused."""
    config = federation.config
    update = trained_update(federation, global_parameters, epoch, client)
    if config.attackers and client in config.attacker_ids:
        if config.attack in OMNISCIENT_ATTACKS:
            raise InputError(f"the {config.attack} attack needs the honest clients' updates; a lone client has none")
        update = get_attack(config.attack).craft(attack_view(config, update, np.empty((0, len(update))), epoch, client))
    return global_parameters + update


def client_models(federation: Federation, global_parameters: np.ndarray, epoch: int) -> np.ndarray:
    """What every client sends for ``epoch``: the global model plus its (honest or crafted) update."""
    return global_parameters + client_updates(federation, global_parameters, epoch)


def next_global(aggregate: np.ndarray, weight: int, fixed_point: FixedPoint) -> np.ndarray:
    """The next global model: the proven aggregate of quantized models over its total ``weight``
    (``KrumParams.weight``: m, or m (n - f) with mixing)."""
    return dequantize(aggregate, fixed_point) / weight
