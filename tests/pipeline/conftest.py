"""Fixtures of the CLI tests."""

import numpy as np
import pytest


@pytest.fixture
def update_files(tmp_path, small_updates):
    """The session's small updates as .npy files in float units (scale 2^-7)."""
    paths = []
    for i, row in enumerate(small_updates):
        paths.append(tmp_path / f"client_{i}.npy")
        np.save(paths[-1], row / 128.0)
    return paths
