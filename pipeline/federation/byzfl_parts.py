"""ByzFL's aggregators and attacks (PyPI ``byzfl``, EPFL), without the rest of the package.

``import byzfl`` also imports its benchmark, which needs torchvision, and PyPI's torchvision
does not load beside the CPU torch this project pins ("operator torchvision::nms does not
exist"). Its aggregators and attacks need only numpy, torch and scipy, so the package is
registered without running its ``__init__`` and those two subpackages are imported on their
own. ``scripts/setup.sh`` installs byzfl without its dependencies for the same reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from functools import cache

from stakelearn.errors import InputError

BYZFL = "byzfl"


@cache
def byzfl_parts() -> types.SimpleNamespace:
    """``aggregators`` and ``attacks``: ByzFL's modules of those names."""
    if BYZFL not in sys.modules:
        spec = importlib.util.find_spec(BYZFL)
        if spec is None or spec.submodule_search_locations is None:
            raise InputError("byzfl is not installed: run `bash scripts/setup.sh`")
        package = types.ModuleType(BYZFL)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[BYZFL] = package
    return types.SimpleNamespace(
        aggregators=importlib.import_module("byzfl.aggregators"), attacks=importlib.import_module("byzfl.attacks")
    )
