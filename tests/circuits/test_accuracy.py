"""The accuracy circuit's reference counts a sample only when its label strictly wins, and the
torch module that ezkl compiles counts exactly what the reference counts."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from stakelearn.circuits.accuracy import (
    CLASSES,
    FEATURES,
    MODEL_LENGTH,
    Accuracy,
    Classifier,
    correct_count,
    integer_logits,
    range_errors,
    set_reach,
    split_model_input,
    split_outputs,
)
from stakelearn.models.digits import DigitsClassifier, flatten


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """A real evaluation set: the data set's grey levels 0..16 and classes 0..9."""
    data = load_digits()
    return data.data.astype(np.int64)[:300], data.target.astype(np.int64)[:300]


def constant_model(biases) -> np.ndarray:
    """Zero weights and the given biases: every sample gets the same logits."""
    model = np.zeros(MODEL_LENGTH, dtype=np.int64)
    model[CLASSES * FEATURES :] = biases
    return model


def trained_like_model(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Class means as weights: a model with real wins, losses and no ties to speak of."""
    weights = np.stack([pixels[labels == c].mean(axis=0) for c in range(CLASSES)])
    return np.concatenate([np.rint(weights).astype(np.int64).ravel(), np.zeros(CLASSES, dtype=np.int64)])


def module_count(model: np.ndarray, pixels: np.ndarray, labels: np.ndarray) -> int:
    inputs = [torch.tensor(np.asarray(x).ravel(), dtype=torch.float64) for x in (model, pixels, labels)]
    out = Accuracy(len(labels)).double()(*inputs).numpy()
    return int(round(split_outputs(out.tolist())["correct"]))


def test_all_zero_model_gets_nothing_right(digits):
    pixels, labels = digits
    assert correct_count(np.zeros(MODEL_LENGTH, dtype=np.int64), pixels, labels) == 0


def test_constant_distinct_biases_score_chance(digits):
    pixels, labels = digits
    biases = np.arange(CLASSES) * 3 - 7  # class 9 always wins
    assert correct_count(constant_model(biases), pixels, labels) == int((labels == 9).sum())


def test_tied_best_classes_count_for_neither(digits):
    pixels, labels = digits
    biases = np.zeros(CLASSES, dtype=np.int64)
    biases[[2, 5]] = 4  # classes 2 and 5 tie for the largest logit on every sample
    assert correct_count(constant_model(biases), pixels, labels) == 0
    biases[5] = 5  # break the tie: class 5 wins alone
    assert correct_count(constant_model(biases), pixels, labels) == int((labels == 5).sum())


def test_reference_counts_strict_argmax_wins(digits):
    pixels, labels = digits
    model = trained_like_model(pixels, labels)
    logits = integer_logits(model, pixels)
    label_logit = logits[np.arange(len(labels)), labels]
    others = np.where(np.arange(CLASSES) == labels[:, None], np.iinfo(np.int64).min, logits)
    count = correct_count(model, pixels, labels)
    assert count == int((label_logit > others.max(axis=1)).sum())
    assert count > len(labels) // 2  # a real classifier still scores


def test_range_errors_count_every_value_out_of_range(digits):
    pixels, labels = digits[0][:64].copy(), digits[1][:64].copy()
    assert range_errors(pixels, labels) == 0
    pixels[0, 0], pixels[3, 9], labels[5], labels[6] = 17, -1, 10, -1
    assert range_errors(pixels, labels) == 4
    # within the lookup table [-4096, 4096], every value is shown in or out of range
    (lo, hi), (label_lo, label_hi) = set_reach(4096)
    assert 65 - (hi - 8) ** 2 >= -4096 > 65 - (hi + 1 - 8) ** 2 and 65 - (lo - 8) ** 2 >= -4096
    assert 82 - (2 * label_hi - 9) ** 2 >= -4096 > 82 - (2 * label_hi + 2 - 9) ** 2
    assert 82 - (2 * label_lo - 9) ** 2 >= -4096 > 82 - (2 * label_lo - 2 - 9) ** 2


@pytest.mark.parametrize("case", ["zero", "constant", "tied", "trained", "saturated", "out of range"])
def test_torch_module_counts_what_the_reference_counts(digits, case):
    pixels, labels = digits[0][:64].copy(), digits[1][:64].copy()
    if case == "out of range":  # the count on a set out of range is the circuit's all the same
        pixels[0, :5], labels[:3] = [17, -1, 72, -56, 30], [10, -1, 36]
    biases = np.zeros(CLASSES, dtype=np.int64)
    biases[[2, 5]] = 4
    model = {
        "zero": np.zeros(MODEL_LENGTH, dtype=np.int64),
        "constant": constant_model(np.arange(CLASSES)),
        "tied": constant_model(biases),
        "trained": trained_like_model(pixels, labels),
        "saturated": np.full(MODEL_LENGTH, 4096, dtype=np.int64),
        "out of range": trained_like_model(digits[0][:64], digits[1][:64]),
    }[case]
    assert module_count(model, pixels, labels) == correct_count(model, pixels, labels)


@pytest.fixture(scope="module")
def trained_mlp(digits) -> tuple[np.ndarray, Classifier, DigitsClassifier]:
    """A 64 -> 32 -> 10 MLP trained on the samples after the first 64, as a task aggregates it:
    m = 3 models quantized at 2^-9, summed (the aggregate's scale is 3 * 2^9)."""
    pixels, labels = digits
    torch.manual_seed(0)
    net = DigitsClassifier(32)
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = torch.tensor(pixels[64:] / 16, dtype=torch.float32), torch.tensor(labels[64:])
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    quantized = np.clip(np.rint(flatten(net) * 2**9), -1024, 1024).astype(np.int64)
    return 3 * quantized, Classifier(hidden=32, scale=3 * 2**9), net


def test_mlp_integer_logits_rank_as_the_model(digits, trained_mlp):
    """The integer numerators pick the class the dequantized float model picks."""
    pixels, _ = digits
    model, classifier, _ = trained_mlp
    net = DigitsClassifier(classifier.hidden)
    torch.nn.utils.vector_to_parameters(torch.tensor(model / classifier.scale, dtype=torch.float32), net.parameters())
    floats = net(torch.tensor(pixels / 16, dtype=torch.float32)).detach().numpy()
    assert (integer_logits(model, pixels, classifier).argmax(axis=1) == floats.argmax(axis=1)).all()


@pytest.mark.parametrize("chunk", [0, 1024])
def test_mlp_module_counts_what_the_reference_counts(digits, trained_mlp, chunk):
    pixels, labels = digits[0][:64], digits[1][:64]
    model, classifier, _ = trained_mlp
    parts = [torch.tensor(part, dtype=torch.float64) for part in split_model_input(model, chunk)]
    values = [torch.tensor(pixels.ravel(), dtype=torch.float64), torch.tensor(labels, dtype=torch.float64)]
    counted = int(Accuracy(64, classifier).double()(*parts, *values)[0])
    assert counted == correct_count(model, pixels, labels, classifier) > 48  # a real classifier scores
