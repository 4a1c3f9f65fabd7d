"""The accuracy circuit: how many samples of a committed evaluation set the committed global
model classifies correctly, as a torch module for ezkl and its numpy twin.

Inputs, one ONNX input each so that each gets its own KZG commitment in the proof:
- ``model`` [650]: the proven aggregate of the last epoch, i.e. the sum of the ``m`` selected
  quantized models (softmax regression: the 10x64 weights row by row, then the 10 biases; with
  a hidden ReLU layer of H units, models.digits' MLP: the Hx64 weights, H biases, 10xH weights,
  10 biases), the very vector whose commitment the chain records as the global model. A model
  aggregated by a round proven in chunks of C comes as K = ceil(length / C) inputs ``model_00``..
  of C values (the last zero-padded, its padding unused), the very vectors the chunk proofs
  committed, so the chain can rebuild the global model's chunk root from their K commitments;
- ``pixels`` [N*64]: the evaluation images as the data set's integer grey levels 0..16 (the
  model sees ``pixels / 16``);
- ``labels`` [N]: the classes 0..9.

The global model is ``model / (m * 2^s)``, so its logits on ``pixels / 16`` are
``(pixels @ W^T + 16 b) / (16 m 2^s)`` with ``W, b`` the integer parts of ``model``: a positive
scale, so the integer logits rank the classes exactly as the model does. With a hidden layer,
``relu`` commutes with that positive scale: the hidden units are ``relu(pixels @ W1^T + 16 b1) /
(16 m 2^s)`` and the logits ``(relu(...) @ W2^T + 16 m 2^s b2) / (16 (m 2^s)^2)``, so the circuit
computes the integer numerators, with ``m 2^s`` (the aggregate's ``scale``) as a constant. A sample counts as
correct only when its label's logit is strictly larger than every other class's logit: a tie
counts as wrong, or a model with equal logits (zero weights, equal biases) would score 100 %.
The circuit counts ``ge``, the classes whose logit is at least the label's (always >= 1, the
label's own), and ``correct = relu(2 - ge)``, 1 exactly when ``ge == 1``: integers throughout.

Output, one public vector ``[correct, range_error, range_tag]``: ``range_error`` counts the set's
values outside their ranges (pixels 0..16, labels 0..9), 0 exactly when the set is in range. The
set is a committed input like the model, never public: the chain binds it by its commitments
(the requester's task commits to them), so the circuit itself must check its ranges, one lookup
per value (``inside_pixels``, ``inside_labels``). A set out of range is still provable as such
(``range_error`` > 0 pays the clients in full) as long as each value's lookup argument is within
the table [-bound, bound] (``set_reach``: pixels -56..72 and labels -27..36 at bound 4096); the
model then sees the values as they are, and the count does not matter. ``range_tag`` is the range
check of the model's inputs (a lookup, as in the round circuit), meaningless as a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stakelearn.circuits.chunk import chunk_count, split_vector
from stakelearn.errors import InputError

FEATURES, CLASSES, GREY_LEVELS = 64, 10, 16
MODEL_LENGTH = CLASSES * FEATURES + CLASSES


@dataclass(frozen=True)
class Classifier:
    """The digits classifier the aggregate holds: softmax regression (``hidden`` 0) or an MLP with
    one hidden ReLU layer; ``scale`` is the aggregate's m * 2^s, which only the MLP's logits need."""

    hidden: int = 0
    scale: int = 1

    def __post_init__(self) -> None:
        if self.hidden < 0 or self.scale < 1:
            raise InputError(f"need hidden >= 0 and scale >= 1, got hidden={self.hidden}, scale={self.scale}")

    @property
    def length(self) -> int:
        if not self.hidden:
            return MODEL_LENGTH
        return self.hidden * FEATURES + self.hidden + CLASSES * self.hidden + CLASSES

    def layers(self, model):
        """The weights and biases of each layer, in models.digits' parameter order (numpy or torch)."""
        widths = [FEATURES, self.hidden, CLASSES] if self.hidden else [FEATURES, CLASSES]
        layers, start = [], 0
        for inputs, outputs in zip(widths, widths[1:]):
            weights = model[start : start + outputs * inputs].reshape(outputs, inputs)
            start += outputs * inputs
            layers.append((weights, model[start : start + outputs]))
            start += outputs
        return layers

    def check(self, model: np.ndarray) -> np.ndarray:
        model = np.asarray(model, dtype=np.int64)
        if model.shape != (self.length,):
            raise InputError(f"the accuracy circuit takes the model's {self.length} parameters, got {model.shape}")
        return model


SOFTMAX = Classifier()  # the demo's default model: softmax regression, 650 parameters


def integer_logits(model: np.ndarray, pixels: np.ndarray, classifier: Classifier = SOFTMAX) -> np.ndarray:
    """The logits' integer numerators (see the module docstring): exact, in int64."""
    layers = classifier.layers(classifier.check(model))
    x = np.asarray(pixels, dtype=np.int64).reshape(-1, FEATURES)
    if classifier.hidden:
        (w1, b1), (w2, b2) = layers
        return np.maximum(x @ w1.T + GREY_LEVELS * b1, 0) @ w2.T + GREY_LEVELS * classifier.scale * b2
    ((weights, biases),) = layers
    return x @ weights.T + GREY_LEVELS * biases


# A pixel p is in 0..16 iff (p - 8)^2 <= 64, and a label l in 0..9 iff (2l - 9)^2 <= 81. The next
# squares of those forms are 81 and 121, so 65 - (p - 8)^2 and 82 - (2l - 9)^2 are >= 1 in range
# and <= -16 or -39 outside, never 0: their sigmoid at scale 0 (a lookup, rounded) is then exactly
# 1 or 0. Within the lookup table [-bound, bound], which is how far out a value can be shown out.
PIXEL_SLACK = (GREY_LEVELS // 2) ** 2 + 1
LABEL_SLACK = (CLASSES - 1) ** 2 + 1


def inside_pixels(pixels):
    """1 for a pixel in 0..16, else 0 (torch: the circuit's lookup; numpy: its reference)."""
    if isinstance(pixels, torch.Tensor):
        return torch.sigmoid(PIXEL_SLACK - (pixels - GREY_LEVELS // 2) ** 2)
    return (PIXEL_SLACK - (np.asarray(pixels, dtype=np.int64) - GREY_LEVELS // 2) ** 2 > 0).astype(np.int64)


def inside_labels(labels):
    """1 for a label in 0..9, else 0 (torch: the circuit's lookup; numpy: its reference)."""
    if isinstance(labels, torch.Tensor):
        return torch.sigmoid(LABEL_SLACK - (2 * labels - (CLASSES - 1)) ** 2)
    return (LABEL_SLACK - (2 * np.asarray(labels, dtype=np.int64) - (CLASSES - 1)) ** 2 > 0).astype(np.int64)


def set_reach(bound: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The pixels and labels the circuit can show in or out of range: those whose lookup
    argument stays within the table [-bound, bound]."""
    p = math.isqrt(bound + PIXEL_SLACK)
    half = GREY_LEVELS // 2
    l_ = math.isqrt(bound + LABEL_SLACK)
    return (half - p, half + p), ((CLASSES - 1 - l_ + 1) // 2, (CLASSES - 1 + l_) // 2)


def correct_count(model: np.ndarray, pixels: np.ndarray, labels: np.ndarray, classifier: Classifier = SOFTMAX) -> int:
    """The reference: samples whose label's logit strictly beats every other class's, computed
    as the circuit does (``relu(2 - ge)``, ``ge`` the classes at least as large as the label's
    logit, the one-hot sum, 0 for a label that is no class)."""
    logits = integer_logits(model, pixels, classifier)
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.maximum(1 - (labels[:, None] - np.arange(CLASSES)) ** 2, 0)
    ge = (logits >= (onehot * logits).sum(axis=1)[:, None]).sum(axis=1)
    return int(np.maximum(2 - ge, 0).sum())


def range_errors(pixels: np.ndarray, labels: np.ndarray) -> int:
    """The reference of ``range_error``: the set's values outside their ranges."""
    return int(np.size(pixels) - inside_pixels(pixels).sum() + np.size(labels) - inside_labels(labels).sum())


def check_evaluation_set(pixels: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N images of 64 integers and N integer labels; their ranges are the circuit's to check
    (``range_error``), so that a requester's out-of-range set can be proven as such."""
    pixels, labels = np.asarray(pixels), np.asarray(labels)
    if pixels.ndim != 2 or pixels.shape[1] != FEATURES or len(pixels) != len(labels) or len(labels) == 0:
        raise InputError(
            f"an evaluation set is N images of {FEATURES} pixels and N labels, got {pixels.shape} and {labels.shape}"
        )
    if np.any(pixels != np.round(pixels)) or np.any(labels != np.round(labels)):
        raise InputError("pixels and labels must be integers")
    return pixels.astype(np.int64), labels.astype(np.int64)


def model_parts(chunk: int, length: int = MODEL_LENGTH) -> int:
    """How many inputs hold the model: one whole (``chunk`` 0), or one per chunk of ``chunk``."""
    return 1 if chunk == 0 else chunk_count(length, chunk)


def split_model_input(model: np.ndarray, chunk: int) -> list[np.ndarray]:
    """The model as the circuit's model inputs take it: whole, or in zero-padded chunks."""
    model = np.asarray(model, dtype=np.int64)
    return [model] if chunk == 0 else split_vector(model, chunk)


def input_names(chunk: int = 0, length: int = MODEL_LENGTH) -> list[str]:
    models = ["model"] if chunk == 0 else [f"model_{k:02d}" for k in range(model_parts(chunk, length))]
    return [*models, "pixels", "labels"]


class Accuracy(torch.nn.Module):
    def __init__(self, samples: int, classifier: Classifier = SOFTMAX) -> None:
        super().__init__()
        self.samples = samples
        self.classifier = classifier
        self.register_buffer("classes", torch.arange(CLASSES, dtype=torch.float32))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *parts, pixels, labels = inputs
        model = torch.cat(parts)[: self.classifier.length] if len(parts) > 1 else parts[0]
        # The set is committed, so the circuit checks its ranges (module docstring): each value
        # costs one lookup, the sigmoid the model's range check already has.
        inside = inside_pixels(pixels).sum() + inside_labels(labels).sum()
        range_error = (pixels.numel() + labels.numel() - inside).reshape(1)
        x = pixels.reshape(self.samples, FEATURES)
        for depth, (weights, biases) in enumerate(self.classifier.layers(model)):
            if depth:  # the hidden layer's output, and the output layer's bias at the scale of its numerator
                x = torch.relu(x)
                biases = self.classifier.scale * biases
            x = torch.einsum("nk,ck->nc", x, weights) + GREY_LEVELS * biases
        logits = x
        onehot = torch.relu(1 - (labels.unsqueeze(1) - self.classes) ** 2)  # all 0 for a label out of range
        label_logit = (onehot * logits).sum(dim=1)
        # Strict win: only the label's own logit may reach it (ge == 1); ties and constant
        # models count nothing.
        ge = (logits >= label_logit.unsqueeze(1)).float().sum(dim=1)
        correct = torch.relu(2 - ge).sum().reshape(1)
        range_tag = sum(torch.sigmoid(part).sum() for part in parts).reshape(1)
        return torch.cat([correct, range_error, range_tag])


def split_outputs(values: list[int]) -> dict:
    """Name the parts of the circuit's output vector."""
    return {"correct": values[0], "range_error": values[1], "range_tag": values[2]}


def export_onnx(samples: int, path: Path, chunk: int = 0, classifier: Classifier = SOFTMAX) -> Path:
    module = Accuracy(samples, classifier).eval()
    parts = [torch.zeros(len(part)) for part in split_model_input(np.zeros(classifier.length), chunk)]
    example = (*parts, torch.zeros(samples * FEATURES), torch.zeros(samples))
    names = input_names(chunk, classifier.length)
    torch.onnx.export(
        module, example, str(path), input_names=names, output_names=["accuracy"], opset_version=17, dynamo=False
    )
    return path
