"""Read a client's update from disk: a ``.npy`` vector or an exported ONNX model.

An ONNX model's parameters (its initializers, in graph order, each flattened) are the update.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from stakelearn.errors import ArtifactError, InputError
from stakelearn.models.quantize import check_update


def onnx_parameters(path: Path) -> np.ndarray:
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and others for a bad file
        raise InputError(f"{path}: unreadable ONNX model ({type(error).__name__})") from error
    arrays = [numpy_helper.to_array(tensor).astype(np.float64).ravel() for tensor in model.graph.initializer]
    if not arrays:
        raise InputError(f"{path}: the ONNX model has no parameters (initializers)")
    return np.concatenate(arrays)


def load_update(path: Path) -> np.ndarray:
    """A flat float64 update from ``path``; one clear InputError/ArtifactError if it is unusable."""
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise InputError(f"{path}: unreadable .npy file ({error})") from error
        values = np.asarray(values)
        if values.ndim > 1:
            values = values.ravel()
    elif suffix == ".onnx":
        values = onnx_parameters(path)
    else:
        raise InputError(f"{path}: expected a .npy vector or an .onnx model, got '{suffix or 'no extension'}'")
    return check_update(values, name=str(path))


def load_updates(paths: list[Path]) -> np.ndarray:
    """Stack the updates of several clients; all must have the same length."""
    updates = [load_update(path) for path in paths]
    lengths = {len(u) for u in updates}
    if len(lengths) > 1:
        detail = ", ".join(f"{p.name}: {len(u)}" for p, u in zip(paths, updates))
        raise InputError(f"updates differ in length ({detail}); every client must send the same model")
    return np.stack(updates)
