"""Byzantine clients, one small function each.

An attack turns what the attacker knows into the update it sends. Following the papers, the
crafted attacks assume colluding attackers that know the honest updates of the epoch (the
strongest, omniscient setting); the optimal ones (ByzFL's) also know the task's aggregation
rule and search for the most harmful vector against it (white box). Attackers that would all
send the same vector add a jitter of a few quanta, as colluders who want to look independent
would: we measure Krum, not equality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from stakelearn.circuits.krum import KrumParams, krum_round
from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint, dequantize, quantize
from stakelearn.pipeline.federation.byzfl_parts import byzfl_parts

SIGN_FLIP_SCALE = 2.0  # sends -2x its honest update
NOISE_STD = 0.2  # Gaussian noise: std of each coordinate
IPM_EPSILON = 0.5  # inner-product manipulation: -epsilon x the honest mean (Xie et al. 2020)
JITTER_STD = 0.005  # ~2.5 quanta at the default fixed point (2^-9)

AggregateFunction = Callable[[np.ndarray], np.ndarray]  # [n, d] float updates -> the [d] aggregate update


@dataclass(frozen=True)
class AttackView:
    """What an attacker knows when it crafts its update."""

    own: np.ndarray  # the update it would send if honest (label flip: trained on flipped labels)
    honest: np.ndarray  # [h, d] the honest clients' updates of this epoch
    clients: int  # n
    attackers: int
    rng: np.random.Generator
    aggregate: AggregateFunction | None = None  # the task's aggregation rule, for white-box attacks
    # What the colluding attackers worked out together this epoch (one dict per epoch, shared by
    # their views): a white-box search runs once, not once per attacker.
    coalition: dict = field(default_factory=dict)


def task_aggregator(params: KrumParams, fixed_point: FixedPoint, global_parameters: np.ndarray) -> AggregateFunction:
    """The task's round as a white-box attacker runs it on candidate float updates: each model
    (global plus update) quantized, the round's rule (Multi-Krum, or NNM then Multi-Krum), and
    the next global model minus the current one."""

    def aggregate(updates: np.ndarray) -> np.ndarray:
        models = np.stack([quantize(global_parameters + update, fixed_point) for update in updates])
        return dequantize(krum_round(models, params).total, fixed_point) / params.weight - global_parameters

    return aggregate


def _honest(view: AttackView, attack: str) -> np.ndarray:
    if not len(view.honest):
        raise InputError(f"the {attack} attack needs the honest clients' updates; a lone client has none")
    return view.honest


def _jitter(view: AttackView) -> np.ndarray:
    return view.rng.normal(0.0, JITTER_STD, size=view.own.shape)


def sign_flip(view: AttackView) -> np.ndarray:
    return -SIGN_FLIP_SCALE * view.own


def gaussian_noise(view: AttackView) -> np.ndarray:
    return view.rng.normal(0.0, NOISE_STD, size=view.own.shape)


def label_flip(view: AttackView) -> np.ndarray:
    return view.own  # the harm is in the training data: labels y -> 9 - y


def free_rider(view: AttackView) -> np.ndarray:
    # Sends its copy of the global model back, untrained: jittered, or the free riders would all
    # send one vector, and their exact copy of the global model would give them away.
    return _jitter(view)


def alie_z(clients: int, attackers: int) -> float:
    """A Little Is Enough (Baruch et al. 2019): the largest shift, in standard deviations, that
    still leaves the attackers inside the bulk a majority-based rule keeps."""
    supporters = clients // 2 + 1 - attackers
    return NormalDist().inv_cdf((clients - supporters) / clients)


def a_little_is_enough(view: AttackView) -> np.ndarray:
    honest = _honest(view, "alie")
    mean, std = honest.mean(axis=0), honest.std(axis=0)
    return mean - alie_z(view.clients, view.attackers) * std + _jitter(view)


def inner_product_manipulation(view: AttackView) -> np.ndarray:
    return -IPM_EPSILON * _honest(view, "ipm").mean(axis=0) + _jitter(view)


def mimic(view: AttackView) -> np.ndarray:
    """Mimic (Karimireddy et al. 2022, ByzFL's ``Mimic`` with epsilon 0): every attacker copies
    the first honest client, over-weighting its (non-IID) data."""
    return byzfl_parts().attacks.Mimic(epsilon=0)(_honest(view, "mimic")) + _jitter(view)


def _optimal(view: AttackView, name: str, searcher: str) -> np.ndarray:
    """ByzFL's optimal ALIE or IPM: a line search over the attack factor for the vector that, sent
    by every attacker, moves the task's aggregate furthest from the honest mean. Searched once
    per epoch for the whole coalition, then jittered per attacker."""
    honest = _honest(view, name)
    if view.aggregate is None:
        raise InputError(f"the {name} attack needs the task's aggregation rule (white box)")
    if name not in view.coalition:
        search = getattr(byzfl_parts().attacks, searcher)(agg=view.aggregate, pre_agg_list=[], f=view.attackers)
        view.coalition[name] = search(honest)
    return view.coalition[name] + _jitter(view)


def optimal_alie(view: AttackView) -> np.ndarray:
    return _optimal(view, "alie_opt", "Optimal_ALittleIsEnough")


def optimal_ipm(view: AttackView) -> np.ndarray:
    return _optimal(view, "ipm_opt", "Optimal_InnerProductManipulation")


@dataclass(frozen=True)
class Attack:
    name: str
    craft: Callable[[AttackView], np.ndarray]
    flips_labels: bool = False


ATTACKS = {
    attack.name: attack
    for attack in (
        Attack("sign_flip", sign_flip),
        Attack("noise", gaussian_noise),
        Attack("label_flip", label_flip, flips_labels=True),
        Attack("free_rider", free_rider),
        Attack("alie", a_little_is_enough),
        Attack("ipm", inner_product_manipulation),
        Attack("alie_opt", optimal_alie),
        Attack("ipm_opt", optimal_ipm),
        Attack("mimic", mimic),
    )
}


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise InputError(f"unknown attack '{name}'; choose one of: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def flip_labels(labels: np.ndarray) -> np.ndarray:
    return (9 - labels).astype(labels.dtype)
