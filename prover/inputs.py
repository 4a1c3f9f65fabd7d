"""Refuse an input a circuit cannot prove, before ezkl sees it.

Every circuit here works at scale 0 and range-checks its inputs with one lookup table; a value
outside the table makes no valid witness, and ezkl's prover then does not fail but hangs. So the
input file is checked first, value by value, against the range each input must lie in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stakelearn.errors import InputError


def check_input_range(data: dict, bounds: Sequence[tuple[int, int]], names: Sequence[str] | None = None) -> None:
    """Raise InputError unless ``data`` (ezkl's input file, ``{"input_data": [[...], ...]}``) has
    one flat list per entry of ``bounds`` and every value is an integer within its ``[low, high]``
    (inclusive); the error names the input, the position, the value and the allowed range."""
    inputs = data.get("input_data") if isinstance(data, dict) else None
    if not isinstance(inputs, list) or len(inputs) != len(bounds):
        found = len(inputs) if isinstance(inputs, list) else "no"
        raise InputError(f"the circuit takes {len(bounds)} inputs, the input file has {found}")
    for index, (values, (low, high)) in enumerate(zip(inputs, bounds)):
        name = f"input {index}" + (f" ({names[index]})" if names else "")
        try:
            array = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise InputError(f"{name} is not a list of numbers") from None
        # Written so that NaN fails too; floats are exact here (bounds are far below 2^53).
        bad = np.flatnonzero(~((array >= low) & (array <= high) & (array == np.round(array))))
        if bad.size:
            position = int(bad[0])
            shown = np.asarray(values, dtype=object).ravel()[position]  # as written, not as a float
            raise InputError(
                f"{name}[{position}] is {shown}, not an integer in {low}..{high}: "
                f"the circuit cannot prove it ({bad.size} such value(s))"
            )
