"""The evaluation set as the chain holds it (issue 25): a negative x value of a circuit with a
signed input range is the field element p - |v| in the reveal and in the hash, as AccuracyVerifier
reads its instances and RewardManager hashes the revealed values."""

import numpy as np
from eth_utils import keccak

from stakelearn.models.quantize import FIELD_MODULUS as P
from stakelearn.pipeline.contracts.protocol import evaluation_commitment
from stakelearn.prover.accuracy import AccuracyOutcome, evaluation_hash, evaluation_values


def words(values):
    return b"".join(v.to_bytes(32, "big") for v in values)


def test_a_negative_value_is_hashed_as_its_field_element():
    signed, encoded = [-8, 7, -1, 3], [P - 8, 7, P - 1, 3]
    assert evaluation_hash(signed) == evaluation_hash(encoded) == keccak(words(encoded))
    outcome = AccuracyOutcome(correct=1, samples=1, model_commitment="", evaluation=signed)
    assert outcome.evaluation_hash == keccak(words(encoded))
    salt = bytes(32)
    assert evaluation_commitment(salt, signed) == evaluation_commitment(salt, encoded)


def test_digits_values_are_unchanged():
    pixels, labels = np.arange(128).reshape(2, 64) % 17, np.array([3, 9])
    values = evaluation_values(pixels, labels)
    assert values == [*pixels.ravel().tolist(), 3, 9]
    assert evaluation_hash(values) == keccak(words(values))
