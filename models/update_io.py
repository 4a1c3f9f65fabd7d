"""Read a client's update from disk: a ``.npy`` vector or an exported ONNX model.

An ONNX model's parameters (its initializers, in graph order, each flattened) are the update.
Its layout (the initializers' names and shapes, in order) is what makes two clients' vectors
comparable coordinate by coordinate: equal lengths are not enough (an eval-mode export folds
BatchNorm into the convolutions, so the same network exports fewer values, in another order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from stakelearn.errors import ArtifactError, InputError
from stakelearn.models.quantize import FixedPoint, check_update, count_clipped

log = logging.getLogger(__name__)

# One (name, shape) per initializer, in graph order.
Layout = tuple[tuple[str, tuple[int, ...]], ...]


def onnx_layout(model: onnx.ModelProto) -> Layout:
    return tuple((tensor.name, tuple(int(dim) for dim in tensor.dims)) for tensor in model.graph.initializer)


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError and others for a bad file
        raise InputError(f"{path}: unreadable ONNX model ({type(error).__name__})") from error


def _onnx_values(model: onnx.ModelProto, path: Path) -> np.ndarray:
    arrays = [numpy_helper.to_array(tensor).astype(np.float64).ravel() for tensor in model.graph.initializer]
    if not arrays:
        raise InputError(f"{path}: the ONNX model has no parameters (initializers)")
    return np.concatenate(arrays)


def onnx_parameters(path: Path) -> np.ndarray:
    return _onnx_values(_load_onnx(path), path)


def read_update(path: Path) -> tuple[np.ndarray, Layout | None]:
    """A flat float64 update from ``path`` and, for an ONNX model, its layout (None for .npy)."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory; an UPDATE is a client's .onnx model or .npy vector file")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.asarray(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as error:
            raise InputError(f"{path}: unreadable .npy file ({error})") from error
        # Flattening a matrix here would fix an order the other clients may not share.
        if values.ndim != 1:
            raise InputError(
                f"{path}: a .npy update must be a 1-D vector, got shape {values.shape}; save np.ravel(update) instead"
            )
        layout = None
    elif suffix == ".onnx":
        model = _load_onnx(path)
        values, layout = _onnx_values(model, path), onnx_layout(model)
    else:
        raise InputError(f"{path}: expected a .npy vector or an .onnx model, got '{suffix or 'no extension'}'")
    return check_update(values, name=str(path)), layout


def load_update(path: Path) -> np.ndarray:
    """A flat float64 update from ``path``; one clear InputError/ArtifactError if it is unusable."""
    return read_update(path)[0]


def _describe(entry: tuple[str, tuple[int, ...]] | None) -> str:
    return "missing" if entry is None else f"'{entry[0]}' of shape {entry[1]}"


def layout_difference(layouts: Sequence[Layout | None], names: Sequence[str]) -> str | None:
    """The first ONNX layout that differs from the first ONNX client's, as one sentence, or None.

    Clients without a layout (.npy vectors) are skipped: only their lengths can be compared.
    """
    models = [(i, layout) for i, layout in enumerate(layouts) if layout is not None]
    if not models:
        return None
    first, reference = models[0]
    for client, layout in models[1:]:
        for t in range(max(len(reference), len(layout))):
            mine = layout[t] if t < len(layout) else None
            theirs = reference[t] if t < len(reference) else None
            if mine != theirs:
                return (
                    f"client {client} ({names[client]}): tensor {t} is {_describe(mine)}, but in "
                    f"client {first} ({names[first]}) it is {_describe(theirs)}"
                )
    return None


def clip_warning(client: int, name: str, clipped: int, size: int, clip: float) -> str:
    share = 100.0 * clipped / size
    percent = f"{share:.1f}" if share >= 0.05 else "< 0.1"
    return (
        f"client {client} ({name}): {clipped:,} of {size:,} values ({percent} %) beyond the clip "
        f"±{float(clip)} were clipped; raise --clip"
    )


def _warn_on_stderr(line: str) -> None:
    log.warning(f"stakelearn: warning: {line}")


def load_updates(
    paths: list[Path], fixed_point: FixedPoint | None = None, warn: Callable[[str], None] = _warn_on_stderr
) -> np.ndarray:
    """Stack the updates of one round's clients, which must share one model layout and length.

    With ``fixed_point``, each client whose values quantization will clip gets one ``warn`` line
    (the values are returned unchanged: clipping stays quantization's job).
    """
    loaded = [read_update(path) for path in paths]
    updates = [values for values, _ in loaded]
    names = [path.name for path in paths]
    difference = layout_difference([layout for _, layout in loaded], names)
    if difference:
        raise InputError(f"updates differ in model layout: {difference}; every client must export the same model")
    lengths = {len(u) for u in updates}
    if len(lengths) > 1:
        detail = ", ".join(f"{name}: {len(u)}" for name, u in zip(names, updates))
        raise InputError(f"updates differ in length ({detail}); every client must send the same model")
    if fixed_point is not None:
        for client, (name, update) in enumerate(zip(names, updates)):
            clipped = count_clipped(update, fixed_point)
            if clipped:
                warn(clip_warning(client, name, clipped, len(update), fixed_point.clip))
    return np.stack(updates)
