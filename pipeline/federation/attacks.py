"""Byzantine clients, one small function each.

An attack turns what the attacker knows into the update it sends. Following the papers, the two
crafted attacks assume colluding attackers that know the honest updates of the epoch (the
strongest, omniscient setting). Attackers that would all send the same vector add a jitter of a
few quanta, as colluders who want to look independent would: we measure Krum, not equality.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from stakelearn.errors import InputError

SIGN_FLIP_SCALE = 2.0  # sends -2x its honest update
NOISE_STD = 0.2  # Gaussian noise: std of each coordinate
IPM_EPSILON = 0.5  # inner-product manipulation: -epsilon x the honest mean (Xie et al. 2020)
JITTER_STD = 0.005  # ~2.5 quanta at the default fixed point (2^-9)


@dataclass(frozen=True)
class AttackView:
    """What an attacker knows when it crafts its update."""

    own: np.ndarray  # the update it would send if honest (label flip: trained on flipped labels)
    honest: np.ndarray  # [h, d] the honest clients' updates of this epoch
    clients: int  # n
    attackers: int
    rng: np.random.Generator


def sign_flip(view: AttackView) -> np.ndarray:
    return -SIGN_FLIP_SCALE * view.own


def gaussian_noise(view: AttackView) -> np.ndarray:
    return view.rng.normal(0.0, NOISE_STD, size=view.own.shape)


def label_flip(view: AttackView) -> np.ndarray:
    return view.own  # the harm is in the training data: labels y -> 9 - y


def free_rider(view: AttackView) -> np.ndarray:
    return np.zeros_like(view.own)  # sends its copy of the global model back, untrained


def alie_z(clients: int, attackers: int) -> float:
    """A Little Is Enough (Baruch et al. 2019): the largest shift, in standard deviations, that
    still leaves the attackers inside the bulk a majority-based rule keeps."""
    supporters = clients // 2 + 1 - attackers
    return NormalDist().inv_cdf((clients - supporters) / clients)


def a_little_is_enough(view: AttackView) -> np.ndarray:
    mean, std = view.honest.mean(axis=0), view.honest.std(axis=0)
    return mean - alie_z(view.clients, view.attackers) * std + view.rng.normal(0.0, JITTER_STD, size=mean.shape)


def inner_product_manipulation(view: AttackView) -> np.ndarray:
    mean = view.honest.mean(axis=0)
    return -IPM_EPSILON * mean + view.rng.normal(0.0, JITTER_STD, size=mean.shape)


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
    )
}


def get_attack(name: str) -> Attack:
    if name not in ATTACKS:
        raise InputError(f"unknown attack '{name}'; choose one of: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def flip_labels(labels: np.ndarray) -> np.ndarray:
    return (9 - labels).astype(labels.dtype)
