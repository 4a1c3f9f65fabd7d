"""ProvenMultiKrum selects what Flower's own MultiKrum selects from the same replies: the replies
are the clients' grid values (multiples of 2^-s), on which Flower's float distances are exact."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy.multikrum import select_multikrum

from stakelearn.circuits.krum import KrumParams, krum_round
from stakelearn.models.quantize import FixedPoint, dequantize
from stakelearn.pipeline.flower.arrays import from_vector, layout_of, to_vector

FIXED_POINT = FixedPoint(scale_bits=9, clip=2.0)


def flower_selected(updates: np.ndarray, f: int, m: int) -> list[int]:
    contents = [
        RecordDict(
            {
                "arrays": ArrayRecord({"w": Array(dequantize(u, FIXED_POINT))}),
                "metrics": MetricRecord({"num-examples": 1 + i}),  # weights play no part in selection
            }
        )
        for i, u in enumerate(updates)
    ]
    chosen = select_multikrum(contents, num_malicious_nodes=f, num_nodes_to_select=m)
    return sorted(next(i for i, c in enumerate(contents) if c is one) for one in chosen)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("n", "f", "m"), [(8, 2, 4), (8, 2, 6), (16, 6, 4), (5, 1, 3)])
def test_same_selection_as_flower(seed, n, f, m):
    rng = np.random.default_rng(seed)
    base = rng.integers(-400, 400, size=650)
    updates = base + rng.integers(-30, 31, size=(n, 650))
    attackers = rng.choice(n, size=f, replace=False)
    updates[attackers] = -2 * base[None, :] + rng.integers(-5, 6, size=(f, 650))  # sign flippers
    updates = np.clip(updates, -FIXED_POINT.max_int, FIXED_POINT.max_int)
    assert krum_round(updates, KrumParams(n, f, m)).selected == flower_selected(updates, f, m)


def test_arrays_round_trip_in_state_dict_order():
    arrays = ArrayRecord({"weight": Array(np.arange(6.0).reshape(2, 3)), "bias": Array(np.array([7.0, 8.0]))})
    vector = to_vector(arrays)
    assert vector.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    back = from_vector(vector, layout_of(arrays))
    assert layout_of(back) == (("weight", (2, 3)), ("bias", (2,)))
    assert to_vector(back).tolist() == vector.tolist()
