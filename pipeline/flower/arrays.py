"""A Flower ArrayRecord as the flat parameter vector the round circuit takes, and back.

The vector is the arrays' values in the record's key order, each array flattened in C order:
the order ``ArrayRecord(model.state_dict())`` keeps, which is also the order the task's model
(and its accuracy circuit) flattens parameters in.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from stakelearn.errors import InputError

Layout = tuple[tuple[str, tuple[int, ...]], ...]


def layout_of(arrays: ArrayRecord) -> Layout:
    return tuple((name, tuple(array.shape)) for name, array in arrays.items())


def to_vector(arrays: ArrayRecord) -> np.ndarray:
    if not len(arrays):
        raise InputError("an ArrayRecord with no arrays has no parameters")
    return np.concatenate([np.asarray(a.numpy(), dtype=np.float64).reshape(-1) for a in arrays.values()])


def from_vector(vector: np.ndarray, layout: Layout) -> ArrayRecord:
    sizes = [int(np.prod(shape)) for _, shape in layout]
    if len(vector) != sum(sizes):
        raise InputError(f"{len(vector)} values do not fill arrays of {sum(sizes)} values")
    parts = np.split(np.asarray(vector, dtype=np.float64), np.cumsum(sizes)[:-1])
    return ArrayRecord({name: Array(part.reshape(shape)) for (name, shape), part in zip(layout, parts, strict=True)})
