"""The off-chain twins of the contracts' rules, in one place: which clients a round flags
(MPSRollup) and which flagged clients are slashed (SlashingManager). The robustness experiment
replays them without a chain; the demo's test checks them against what the chain did.

The vocabulary, everywhere (CLI, files, contracts):
- selected: Multi-Krum kept the client's update; it is averaged into the next model.
- left out: present but not selected (n - m clients always are, honest ones too).
- absent: the client committed nothing in time; its slot holds the absent vector.
- flagged: left out with a score far above the selected ones (an outlier); counts towards slashing.
- slashed: flagged often enough that part of its stake was taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stakelearn.errors import StakeLearnError


@dataclass(frozen=True)
class SlashingPolicy:
    """Slash ``slash_bps`` of the stake when flagged in ``threshold`` of the last ``window`` epochs."""

    threshold: int = 2
    window: int = 3
    slash_bps: int = 2_000
    # Flag a client Multi-Krum left out only if its score is over 3x the largest selected score
    # (honest clients left out measured <= 2.4x on non-IID digits, attackers caught >= 3.3x).
    outlier_bps: int = 30_000

    def __post_init__(self) -> None:
        if not (
            1 <= self.threshold <= self.window <= 64
            and 0 <= self.slash_bps <= 10_000
            and 10_000 <= self.outlier_bps <= 2**32
        ):
            raise StakeLearnError(
                f"bad slashing policy {self}: need 1 <= threshold <= window <= 64, "
                "bps <= 10000, outlier bps in 10000..2^32"
            )


def flagged(scores: np.ndarray, selected: np.ndarray, outlier_bps: int) -> np.ndarray:
    """MPSRollup's flags: a client is flagged when Multi-Krum left it out and its score exceeds
    ``outlier_bps / 10000`` times the largest selected score. Multi-Krum always leaves out
    n - m clients, honest ones too when fewer attack; the outlier test keeps those from being
    flagged. (Equal updates are not flagged: with slot tags no two slots hold the same
    commitment, and flagging copies would let a copier frame the original.)"""
    scores = np.asarray(scores, dtype=object)  # exact integers, as on chain
    selected = np.asarray(selected, dtype=bool)
    reference = max(scores[selected])
    return np.array([(not keep) and score * 10_000 > reference * outlier_bps for score, keep in zip(scores, selected)])


def slashed(flags: np.ndarray, policy: SlashingPolicy) -> np.ndarray:
    """SlashingManager's rule: given the ``[epochs, n]`` flags, which clients are slashed in which
    epoch (flagged in ``threshold`` of the last ``window`` epochs; the window then restarts)."""
    flags = np.asarray(flags, dtype=bool)
    marks = np.zeros_like(flags)
    windows = [0] * flags.shape[1]
    for epoch, row in enumerate(flags):
        for client, flag in enumerate(row):
            windows[client] = ((windows[client] << 1) | int(flag)) & ((1 << policy.window) - 1)
            if flag and windows[client].bit_count() >= policy.threshold:
                marks[epoch, client] = True
                windows[client] = 0
    return marks
