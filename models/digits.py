"""The federated task's data and model: scikit-learn's 8x8 digits, a softmax classifier, local SGD.

The data set ships inside scikit-learn (1,797 images, 10 classes), so nothing is downloaded.
A model is handled as one flat float vector (its parameters in ``state_dict`` order): that is
what clients train from, what their updates are (trained minus global), and what the
aggregator adds the proven aggregate to.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stakelearn.errors import InputError

FEATURES = 64
CLASSES = 10
MLP_HIDDEN = 128  # the task's MLP: 64 -> 128 -> 10 with a ReLU, 9,610 parameters


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # float32 [N, 64], pixel intensities scaled to [0, 1]
    y: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.x[index], self.y[index])


def load_digits_split(test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """The digits data set, shuffled with ``seed`` and split into (train, held-out test)."""
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(round(len(y) * (1.0 - test_fraction)))
    return Dataset(x[order[:cut]], y[order[:cut]]), Dataset(x[order[cut:]], y[order[cut:]])


def split_iid(labels: np.ndarray, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle and deal the samples into ``clients`` near-equal shards."""
    return [np.sort(part) for part in np.array_split(rng.permutation(len(labels)), clients)]


def split_dirichlet(
    labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator, min_samples: int = 10
) -> list[np.ndarray]:
    """Non-IID shards: each class is divided among clients in Dirichlet(alpha) proportions
    (small alpha: each client sees few classes). Redrawn until every client has ``min_samples``."""
    if alpha <= 0:
        raise InputError(f"the Dirichlet concentration must be > 0, got {alpha}")
    if clients * min_samples > len(labels):
        raise InputError(f"{len(labels)} samples cannot give {clients} clients {min_samples} each")
    for _ in range(1000):
        shards: list[list[int]] = [[] for _ in range(clients)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(members)).astype(int)[:-1]
            for shard, part in zip(shards, np.split(members, cuts)):
                shard.extend(part.tolist())
        if min(len(s) for s in shards) >= min_samples:
            return [np.sort(np.array(s, dtype=np.int64)) for s in shards]
    raise InputError(f"could not draw a Dirichlet({alpha}) split with {min_samples} samples per client; raise alpha")


class DigitsClassifier(nn.Module):
    """Softmax regression (64 -> 10), or one hidden ReLU layer when ``hidden`` > 0."""

    def __init__(self, hidden: int = 0) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.net = nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))
        else:
            self.net = nn.Sequential(nn.Linear(FEATURES, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def parameter_count(hidden: int = 0) -> int:
    return sum(p.numel() for p in DigitsClassifier(hidden).parameters())


def initial_parameters(hidden: int, seed: int) -> np.ndarray:
    """The task's initial global model: torch's default initialization under ``seed``."""
    torch.manual_seed(seed)
    return flatten(DigitsClassifier(hidden))


def flatten(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.state_dict().values()]).double().numpy()


def build(parameters: np.ndarray, hidden: int) -> DigitsClassifier:
    """A classifier holding the flat ``parameters``."""
    model = DigitsClassifier(hidden)
    if len(parameters) != parameter_count(hidden):
        raise InputError(f"expected {parameter_count(hidden)} parameters for hidden={hidden}, got {len(parameters)}")
    state, offset = {}, 0
    for name, tensor in model.state_dict().items():
        state[name] = torch.as_tensor(parameters[offset : offset + tensor.numel()], dtype=torch.float32).reshape(
            tensor.shape
        )
        offset += tensor.numel()
    model.load_state_dict(state)
    return model


@contextmanager
def one_torch_thread():
    """Train on one thread, then restore torch's setting. The models are tiny (650 parameters by
    default): extra threads only synchronize, and on a busy machine made training 10-30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class LocalTraining:
    """A client's local SGD: ``epochs`` passes over its shard in mini-batches."""

    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 0.5

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise InputError(f"bad local training settings {self}: need epochs, batch size and learning rate > 0")


def train_local(parameters: np.ndarray, data: Dataset, hidden: int, training: LocalTraining, seed: int) -> np.ndarray:
    """The parameters after local SGD from ``parameters`` on ``data`` (deterministic in ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    model = build(parameters, hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=training.learning_rate)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    for _ in range(training.epochs):
        for batch in torch.randperm(len(y), generator=generator).split(training.batch_size):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return flatten(model)


def accuracy(parameters: np.ndarray, data: Dataset, hidden: int) -> float:
    with torch.no_grad():
        predictions = build(parameters, hidden)(torch.from_numpy(data.x)).argmax(dim=1).numpy()
    return float((predictions == data.y).mean())


def export_onnx(parameters: np.ndarray, hidden: int, path: Path) -> Path:
    """The client's trained model as ONNX: its initializers, flattened in order, are ``parameters``."""
    model = build(parameters, hidden).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for a linear model
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, FEATURES),),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
    return path
