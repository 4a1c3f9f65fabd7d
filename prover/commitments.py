"""KZG commitments of updates, computed off circuit exactly as the proof exposes them.

With ezkl's ``polycommit`` input visibility each circuit input is committed with KZG inside the
proof: input ``i``'s commitment is the G1 point at bytes ``64*i .. 64*i+64`` of the proof
(x then y, 32-byte big-endian each). A client computes the same point from its quantized update,
the circuit's verifying key and settings, and the SRS, and signs it before any proof exists.
The commitment is binding but not hiding, and depends on the SRS and the circuit layout, so a
task's circuit is frozen before clients commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stakelearn.models.quantize import to_field
from stakelearn.prover import steps

COMMITMENT_BYTES = 64


def felts(values: np.ndarray) -> list[str]:
    """Signed integers as ezkl's field-element strings (little-endian hex, no prefix)."""
    return [element.to_bytes(32, "little").hex() for element in to_field(values)]


def _point_bytes(point) -> bytes:
    # ezkl returns coordinates as little-endian hex; the proof holds them big-endian.
    return bytes.fromhex(point.x)[::-1] + bytes.fromhex(point.y)[::-1]


def commit(values: np.ndarray, vk: Path, settings: Path, srs: Path) -> bytes:
    """The 64-byte KZG commitment of one quantized vector, as it appears in the proof."""
    points = steps.kzg_commit(felts(values), vk, settings, srs)
    return _point_bytes(points[0])


def proof_commitments(proof: bytes, count: int) -> list[bytes]:
    """The first ``count`` input commitments inside a proof."""
    return [proof[COMMITMENT_BYTES * i : COMMITMENT_BYTES * (i + 1)] for i in range(count)]
