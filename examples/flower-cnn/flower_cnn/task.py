"""The team's model and data: nothing here knows StakeLearn.

TinyCNN: Conv2d(1, 4, 3) -> ReLU -> MaxPool(2) -> Flatten -> Linear(36, 10), 410 parameters, on
the 8x8 digits scaled to 0..1. The data ships with scikit-learn: a fixed shuffle, the first
part dealt to the clients, the next held out for the server's float accuracy and the last kept
by the requester as its private evaluation set.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

SEED = 0
EVALUATION_SAMPLES = 32
HELD_OUT = 300


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(36, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(torch.flatten(x, 1))


def digits() -> tuple[np.ndarray, np.ndarray]:
    """All digits, shuffled once: images [N, 1, 8, 8] in 0..1 and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(SEED).permutation(len(data.target))
    x = (data.images[order] / 16.0).astype(np.float32)[:, None]
    return x, data.target[order].astype(np.int64)


def training_part() -> tuple[np.ndarray, np.ndarray]:
    x, y = digits()
    end = len(y) - HELD_OUT - EVALUATION_SAMPLES
    return x[:end], y[:end]


def held_out() -> tuple[np.ndarray, np.ndarray]:
    x, y = digits()
    start = len(y) - HELD_OUT - EVALUATION_SAMPLES
    return x[start : start + HELD_OUT], y[start : start + HELD_OUT]


def evaluation_set() -> tuple[np.ndarray, np.ndarray]:
    """The requester's private set: the last samples of the shuffle, which no client trains on."""
    x, y = digits()
    return x[-EVALUATION_SAMPLES:], y[-EVALUATION_SAMPLES:]


def shard(partition: int, partitions: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = training_part()
    part = np.array_split(np.arange(len(y)), partitions)[partition]
    return x[part], y[part]


def train(model: TinyCNN, x: np.ndarray, y: np.ndarray, epochs: int = 2, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(16):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()


def accuracy(model: TinyCNN, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())


def export(model: TinyCNN, path: Path) -> None:
    """The model as ONNX, its weights inside (the task's initial model)."""
    model.eval()
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and exact here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["x"], output_names=["logits"], dynamo=False
        )


def main() -> None:
    """The requester's files: ``--model`` (ONNX, freshly initialised) and ``--evaluation`` (.npz x, y)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--evaluation", type=Path, required=True)
    args = parser.parse_args()
    torch.manual_seed(SEED)
    export(TinyCNN(), args.model)
    x, y = evaluation_set()
    np.savez(args.evaluation, x=x, y=y)
    print(f"wrote {args.model} and {args.evaluation} ({len(y)} samples)")


if __name__ == "__main__":
    main()
