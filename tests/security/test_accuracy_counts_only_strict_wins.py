"""Finding: a constant model was proven 100 % accurate, because a label whose logit tied the
largest counted as correct and a model with equal logits ties every class on every sample.
These prove (real ezkl) the accuracy of untrained models and check the proof counts only
strict wins: nothing for equal logits, chance for one constant winner."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from stakelearn.circuits.accuracy import CLASSES, FEATURES, MODEL_LENGTH, correct_count
from stakelearn.prover.accuracy import prove_accuracy, verify_accuracy


@pytest.fixture(scope="module")
def evaluation(small_accuracy) -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    samples = small_accuracy.circuit.samples
    return data.data.astype(np.int64)[:samples], data.target.astype(np.int64)[:samples]


def constant_model(biases) -> np.ndarray:
    model = np.zeros(MODEL_LENGTH, dtype=np.int64)
    model[CLASSES * FEATURES :] = biases
    return model


@pytest.mark.parametrize(
    "name, model",
    [
        ("equal logits", constant_model(np.full(CLASSES, 7))),
        # class 9 wins every sample; slow (15 s): equal logits replay the finding in CI
        pytest.param("one constant winner", constant_model(np.arange(CLASSES)), marks=pytest.mark.slow),
    ],
)
def test_proven_accuracy_of_an_untrained_model_is_the_strict_count(name, model, evaluation, small_accuracy, tmp_path):
    pixels, labels = evaluation
    expected = correct_count(model, pixels, labels)
    assert expected == (0 if name == "equal logits" else int((labels == 9).sum()))
    outcome = prove_accuracy(model, pixels, labels, small_accuracy.circuit, tmp_path / "accuracy")
    assert outcome.correct == expected
    assert outcome.correct <= len(labels) // 4  # the old circuit proved 32 of 32 for equal logits
    assert verify_accuracy(tmp_path / "accuracy").correct == expected
