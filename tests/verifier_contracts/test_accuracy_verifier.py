"""AccuracyVerifier's shape, given at deployment: the samples, the model's chunks and the batches
the set is proven in. The set's own shape and ranges are the circuit's (it checks them and says
so in ``range_error``), so the verifier stores none; verifyAccuracy on real digits proofs is
tested with the proofs (tests/prover, tests/security, tests/pipeline/test_demo.py)."""

import pytest
from eth_abi import encode

from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.verifiers import accuracy_verifier_args
from stakelearn.verifier_contracts.build import load_artifact

UNPINNED = (b"\x01" * 20, bytes(32))  # no reusable verifier, no VKA: the views need neither


@pytest.fixture(scope="module")
def chain():
    return Chain.embedded()


def constructor_error(chain, *shape) -> str | None:
    """The custom error deploying an AccuracyVerifier of this shape reverts with (an eth_call)."""
    artifact = load_artifact("AccuracyVerifier")
    types = ["address", "bytes32", "uint256", "uint256", "uint256"]
    result = chain.call(None, artifact.bytecode + encode(types, [*UNPINNED, *shape]))
    return None if result.ok else result.reason


def test_the_shape_is_exposed(chain):
    artifact = load_artifact("AccuracyVerifier")
    address, _ = chain.deploy(artifact, *UNPINNED, 64, 3, 8)
    verifier = chain.contract(address, artifact.abi).functions
    assert (verifier.samples().call(), verifier.modelChunks().call(), verifier.batches().call()) == (64, 3, 8)
    names = {entry.get("name") for entry in artifact.abi}
    assert not {"provable", "inputRange", "features", "classes"} & names  # the circuit checks the set


@pytest.mark.parametrize(
    "shape, error",
    [
        ((32, 0, 0), "AccuracyVerifier__BatchesDoNotDivide"),
        ((32, 0, 3), "AccuracyVerifier__BatchesDoNotDivide"),
        ((32, 0, 4), None),
        ((1, 5, 1), None),  # the smallest shape, a chunked model
    ],
)
def test_the_constructor_refuses_an_impossible_shape(chain, shape, error):
    assert constructor_error(chain, *shape) == error


def test_the_digits_circuit_deploys_its_shape(small_accuracy):
    circuit = small_accuracy.circuit
    args = accuracy_verifier_args("0x" + "01" * 20, small_accuracy, 2 * circuit.samples)
    assert args[2:] == (2 * circuit.samples, 0, 2)


def test_the_shape_of_a_verifier_for_no_accuracy_circuit_deploys(chain, small_accuracy):
    """accuracy_verifier_args for a set the circuit cannot take: arguments that deploy, so a
    client comparing code sees a mismatch rather than an error."""
    args = accuracy_verifier_args("0x" + "01" * 20, small_accuracy, small_accuracy.circuit.samples + 1)
    assert constructor_error(chain, *args[2:]) is None
