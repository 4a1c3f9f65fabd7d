"""The off-chain twins of the contracts' rules, in one place: which clients a round flags
(MPSRollup) and what a flag and a slash cost (SlashingManager, RewardManager). The robustness
experiment replays them without a chain; the demo's test checks them against what the chain did.

The vocabulary, everywhere (CLI, files, contracts):
- selected: Multi-Krum kept the client's update; it is averaged into the next model.
- left out: present but not selected (n - m clients always are, honest ones too).
- absent: the client committed nothing in time; its slot holds the absent vector.
- flagged: a raw Krum score far above the reference score (an outlier): the epoch earns the
  client nothing. A flag never costs stake: an honest client with unusual data can be an
  outlier, and colluders can push it further out, so a score is no proof of a violation.
- slashed: the client signed two different commitments for one task and epoch (equivocation,
  proven by the two signatures): part of its stake is taken. An honest client's signer never
  signs twice, so no honest client can be slashed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stakelearn.errors import StakeLearnError


@dataclass(frozen=True)
class PenaltyPolicy:
    """What a flag and a slash are: a flag is a raw Krum score over ``outlier_bps / 10000`` times
    the reference score (the epoch is unpaid); a slash takes ``slash_bps`` of the stake from a
    client that signed two commitments for one epoch."""

    slash_bps: int = 2_000
    # Flag a present client whose raw Krum score is over this many ten-thousandths of the
    # reference score: chosen by `stakelearn robustness`'s sweep (docs/results/robustness.json).
    outlier_bps: int = 75_000

    def __post_init__(self) -> None:
        if not (0 <= self.slash_bps <= 10_000 and 10_000 <= self.outlier_bps <= 2**32):
            raise StakeLearnError(f"bad penalty policy {self}: need slash bps <= 10000, outlier bps in 10000..2^32")


def present_mask(count: int, absent: np.ndarray | None) -> np.ndarray:
    return np.ones(count, dtype=bool) if absent is None else ~np.asarray(absent, dtype=bool)


def reference_score(scores: np.ndarray, f: int, absent: np.ndarray | None = None) -> int:
    """What a score is compared with: the (p - f)-th smallest of the p present clients' raw Krum
    scores (MPSRollup computes the same). Neither up to f attackers scoring high nor up to f
    scoring low can move it outside the honest clients' scores; with f = 0 it is the largest."""
    values = sorted(int(s) for s, here in zip(scores, present_mask(len(scores), absent)) if here)
    return values[len(values) - f - 1]


def flagged(scores: np.ndarray, outlier_bps: int, f: int, absent: np.ndarray | None = None) -> np.ndarray:
    """MPSRollup's flags: a present client is flagged when its raw Krum score exceeds
    ``outlier_bps / 10000`` times :func:`reference_score`. The raw scores, of the committed
    updates, whatever the aggregation rule: mixing (NNM) pulls an outlier towards the honest by
    design. Not "left out": the selection always leaves n - m clients out, honest ones too, and
    honest clients with unusual (non-IID) data score high, so only a score several times the
    reference is evidence. (Equal updates are not flagged: with slot tags no two slots hold the
    same commitment, and flagging copies would let a copier frame the original.)"""
    reference = reference_score(scores, f, absent)
    present = present_mask(len(scores), absent)
    return np.array(
        [bool(here) and int(score) * 10_000 > reference * outlier_bps for score, here in zip(scores, present)]
    )
