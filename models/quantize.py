"""Fixed-point quantization of flat model updates.

A client's update is a flat float vector. The circuit works on integers (ezkl input scale 0,
so every operation is exact), so each update is mapped to ``q = clip(round(x * 2**s), -Q, Q)``
with the task's scale ``s`` and clip bound ``Q = round(clip * 2**s)``.

Error bound: for ``|x| <= clip``, ``|dequantize(quantize(x)) - x| <= 2**-(s + 1)`` (rounding to
the nearest multiple of ``2**-s``); values beyond ``clip`` are clipped to ``+-clip``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stakelearn.errors import InputError

# BN254 scalar field modulus: ezkl's circuits (Halo2/KZG on BN254) compute in this field.
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617

# Largest |q| we allow, so that Krum scores (sums of n * d squared differences) stay far below
# both int64 and the circuit's comparison range.
MAX_INT_BOUND = 2**15


@dataclass(frozen=True)
class FixedPoint:
    """The task's fixed-point format: resolution ``2**-scale_bits``, values clipped to ``clip``."""

    scale_bits: int = 7
    clip: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.scale_bits <= 15:
            raise InputError(f"scale_bits must be in 0..15, got {self.scale_bits}")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise InputError(f"clip must be a positive finite number, got {self.clip}")
        if not 1 <= self.max_int <= MAX_INT_BOUND:
            raise InputError(
                f"clip * 2**scale_bits = {self.max_int} must be in 1..{MAX_INT_BOUND}; lower clip or scale_bits"
            )

    @property
    def max_int(self) -> int:
        """The clip bound Q as an integer."""
        return int(round(self.clip * 2**self.scale_bits))

    @property
    def max_error(self) -> float:
        """Worst-case rounding error for values within ``clip``."""
        return 2.0 ** -(self.scale_bits + 1)


def check_update(update: np.ndarray, name: str = "update") -> np.ndarray:
    """Return ``update`` as a flat float64 vector, or raise InputError naming what is wrong."""
    array = np.asarray(update)
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"{name}: expected a non-empty flat vector, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InputError(f"{name}: {bad.size} NaN or infinite value(s), first at index {bad[0]}")
    return array


def quantize(update: np.ndarray, fixed_point: FixedPoint) -> np.ndarray:
    """Map a flat float update to clipped fixed-point integers (int64)."""
    values = check_update(update)
    scaled = np.rint(values * 2.0**fixed_point.scale_bits)
    return np.clip(scaled, -fixed_point.max_int, fixed_point.max_int).astype(np.int64)


def count_clipped(update: np.ndarray, fixed_point: FixedPoint) -> int:
    """How many values :func:`quantize` clips: those that round beyond ``+-max_int``."""
    scaled = np.rint(check_update(update) * 2.0**fixed_point.scale_bits)
    return int(np.count_nonzero(np.abs(scaled) > fixed_point.max_int))


def dequantize(quantized: np.ndarray, fixed_point: FixedPoint) -> np.ndarray:
    """Map fixed-point integers back to floats."""
    return np.asarray(quantized, dtype=np.float64) / 2.0**fixed_point.scale_bits


def field_element(value: int) -> int:
    """A signed integer as the BN254 field element a circuit's public values and the contracts
    carry (negative v becomes p - |v|; the contracts read an element above (p - 1) / 2 as
    negative). An element already encoded, 0 <= v < p, comes back unchanged."""
    value = int(value)
    if not -(FIELD_MODULUS // 2) <= value < FIELD_MODULUS:
        raise InputError(f"{value} is neither a field element nor a signed integer within (p - 1) / 2")
    return value % FIELD_MODULUS


def to_field(values: np.ndarray) -> list[int]:
    """Signed integers as BN254 field elements (negative v becomes p - |v|)."""
    return [field_element(v) for v in np.asarray(values, dtype=np.int64).tolist()]


def from_field(elements: list[int]) -> np.ndarray:
    """Inverse of :func:`to_field` for elements that encode small signed integers."""
    half = FIELD_MODULUS // 2
    return np.array([e - FIELD_MODULUS if e > half else e for e in elements], dtype=np.int64)
