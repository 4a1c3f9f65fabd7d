"""AccuracyVerifier's evaluation-set shape, given at deployment (issue 25): x values per sample,
classes and a signed input range, so that a circuit built from any classifier gets a verifier.
`provable` is a view, so a verifier pinned to no real circuit answers it; verifyAccuracy on real
digits proofs is tested with the proofs (tests/prover, tests/security)."""

import pytest
from eth_abi import encode

from stakelearn.circuits.accuracy import CLASSES, FEATURES, GREY_LEVELS
from stakelearn.models.quantize import FIELD_MODULUS, field_element
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.verifiers import accuracy_verifier_args
from stakelearn.verifier_contracts.build import load_artifact

P = FIELD_MODULUS
HALF = (P - 1) // 2  # the largest positive a field element reads as
SAMPLES, FEATURES_, CLASSES_ = 2, 3, 4
SIGNED = (-8, 7)  # a signed input range, as a model with centred inputs has
UNPINNED = (b"\x01" * 20, bytes(32))  # no reusable verifier, no VKA: provable needs neither


@pytest.fixture(scope="module")
def chain():
    return Chain.embedded()


def deploy(chain, samples=SAMPLES, features=FEATURES_, classes=CLASSES_, input_range=SIGNED, chunks=0, batches=1):
    artifact = load_artifact("AccuracyVerifier")
    args = (*UNPINNED, samples, features, classes, *input_range, chunks, batches)
    address, _ = chain.deploy(artifact, *args)
    return chain.contract(address, artifact.abi)


def constructor_error(chain, *shape) -> str | None:
    """The custom error deploying an AccuracyVerifier of this shape reverts with (an eth_call)."""
    artifact = load_artifact("AccuracyVerifier")
    types = ["address", "bytes32", "uint256", "uint256", "uint256", "int256", "int256", "uint256", "uint256"]
    result = chain.call(None, artifact.bytecode + encode(types, [*UNPINNED, *shape]))
    return None if result.ok else result.reason


@pytest.fixture(scope="module")
def signed(chain):
    return deploy(chain)


def valid_set(xs=None, labels=None) -> list[int]:
    """A set the signed verifier takes: x values (signed, encoded as field elements), then labels."""
    xs = [0] * (SAMPLES * FEATURES_) if xs is None else xs
    labels = [CLASSES_ - 1, 0] if labels is None else labels
    return [field_element(v) for v in xs] + labels


def with_x(value: int, index: int = 4, fill: int = 0) -> list[int]:
    """A valid set (x values ``fill``) with one x value replaced by ``value`` (a raw uint256,
    not re-encoded)."""
    values = valid_set(xs=[fill] * (SAMPLES * FEATURES_))
    values[index] = value
    return values


def test_the_shape_is_exposed(signed):
    assert signed.functions.features().call() == FEATURES_
    assert signed.functions.classes().call() == CLASSES_
    assert signed.functions.inputRange().call() == list(SIGNED)
    assert signed.functions.samples().call() == SAMPLES


@pytest.mark.parametrize(
    "value",
    [P - 8, 7, 0, P - 1],  # -8 and 7, the edges, read from their field elements; 0; -1
    ids=["min -8", "max 7", "zero", "-1"],
)
def test_signed_range_takes_its_edges(signed, value):
    assert signed.functions.provable(with_x(value)).call()


@pytest.mark.parametrize(
    "value",
    [P - 9, 8, P, 2**256 - 1, (P - 1) // 2, (P + 1) // 2],
    ids=["-9", "8", "p (not a field element)", "2^256 - 1", "largest positive", "most negative"],
)
def test_signed_range_refuses_beyond_its_edges(signed, value):
    assert not signed.functions.provable(with_x(value)).call()


@pytest.mark.parametrize(
    "input_range, taken, refused",
    [
        ((3, 5), [3, 5], [2, 6, P - 1, P - 3]),  # a range above zero
        ((-5, -3), [P - 5, P - 3], [P - 6, P - 2, 3, 5, 0]),  # a range below zero
        ((-HALF, HALF), [0, HALF, HALF + 1, P - 1], [P, 2**256 - 1]),  # every field element, nothing else
    ],
    ids=["positive", "negative", "whole field"],
)
def test_other_ranges_take_exactly_their_values(chain, input_range, taken, refused):
    verifier = deploy(chain, input_range=input_range)
    assert verifier.functions.inputRange().call() == list(input_range)
    fill = input_range[0]
    assert all(verifier.functions.provable(with_x(v, fill=fill)).call() for v in taken)
    assert not any(verifier.functions.provable(with_x(v, fill=fill)).call() for v in refused)


def test_every_x_value_is_checked_not_only_one(signed):
    for index in (0, SAMPLES * FEATURES_ - 1):
        assert not signed.functions.provable(with_x(8, index)).call()
    assert signed.functions.provable(valid_set(xs=[-8, 7, -1, 1, 0, 7])).call()


def test_a_label_equal_to_classes_is_refused(signed):
    assert signed.functions.provable(valid_set(labels=[CLASSES_ - 1, CLASSES_ - 1])).call()
    assert not signed.functions.provable(valid_set(labels=[0, CLASSES_])).call()
    assert not signed.functions.provable(valid_set(labels=[P - 1, 0])).call()  # a label is never negative


@pytest.mark.parametrize("change", [-1, 1, -(FEATURES_ + 1)], ids=["one short", "one more", "a sample short"])
def test_a_set_of_the_wrong_length_is_refused(signed, change):
    values = valid_set()
    values = values[:change] if change < 0 else values + [0] * change
    assert not signed.functions.provable(values).call()
    assert not signed.functions.provable([]).call()


def test_the_digits_shape_keeps_its_checks(chain):
    digits = deploy(chain, features=FEATURES, classes=CLASSES, input_range=(0, GREY_LEVELS))
    values = [GREY_LEVELS] * FEATURES + [0] * FEATURES + [CLASSES - 1, 0]  # two samples' pixels, then labels
    assert digits.functions.provable(values).call()
    for bad in (GREY_LEVELS + 1, P - 1):  # pixel 17, pixel -1
        assert not digits.functions.provable([bad, *values[1:]]).call()
    assert not digits.functions.provable([*values[:-1], CLASSES]).call()


@pytest.mark.parametrize(
    "shape, error",
    [
        ((SAMPLES, 0, CLASSES_, *SIGNED, 0, 1), "AccuracyVerifier__NoFeatures"),
        ((SAMPLES, FEATURES_, 1, *SIGNED, 0, 1), "AccuracyVerifier__TooFewClasses"),
        ((SAMPLES, FEATURES_, 0, *SIGNED, 0, 1), "AccuracyVerifier__TooFewClasses"),
        ((SAMPLES, FEATURES_, CLASSES_, 1, 0, 0, 1), "AccuracyVerifier__BadInputRange"),
        ((SAMPLES, FEATURES_, CLASSES_, -HALF - 1, 0, 0, 1), "AccuracyVerifier__BadInputRange"),
        ((SAMPLES, FEATURES_, CLASSES_, 0, HALF + 1, 0, 1), "AccuracyVerifier__BadInputRange"),
        ((SAMPLES, FEATURES_, CLASSES_, -HALF, HALF, 0, 1), None),  # every field element
        ((SAMPLES, FEATURES_, CLASSES_, *SIGNED, 0, 0), "AccuracyVerifier__BatchesDoNotDivide"),
        ((SAMPLES, FEATURES_, CLASSES_, 3, 3, 0, 1), None),  # a one-value range is a range
        ((SAMPLES, 1, 2, *SIGNED, 0, 2), None),  # the smallest shape
    ],
)
def test_the_constructor_refuses_an_impossible_shape(chain, shape, error):
    assert constructor_error(chain, *shape) == error


def test_the_digits_circuit_deploys_its_shape(small_accuracy):
    circuit = small_accuracy.circuit
    assert (circuit.features, circuit.classes, circuit.input_range) == (64, 10, (0, 16))
    # properties, not fields: the circuit's description, so its digest and cached keys, are unchanged
    assert not {"features", "classes", "input_range"} & set(circuit.description())
    args = accuracy_verifier_args("0x" + "01" * 20, small_accuracy, 2 * circuit.samples)
    assert args[2:] == (2 * circuit.samples, 64, 10, 0, 16, 0, 2)


def test_the_shape_of_a_verifier_for_no_accuracy_circuit_deploys(chain, small_accuracy):
    """accuracy_verifier_args for a set the circuit cannot take: arguments that deploy, so a
    client comparing code sees a mismatch rather than an error."""
    args = accuracy_verifier_args("0x" + "01" * 20, small_accuracy, small_accuracy.circuit.samples + 1)
    assert constructor_error(chain, *args[2:]) is None
