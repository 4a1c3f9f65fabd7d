import pytest

from stakelearn.pipeline.chain import Chain
from stakelearn.prover.circuit import prepare

from .world import make_world


@pytest.fixture
def world(small_circuit, proven_round, small_accuracy):
    return make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy)
