"""The requester's commitment to its evaluation set: the salted hash of the set's commitments
under the accuracy circuit, in proof order, as RewardManager.evaluationCommitment computes it
from the proofs' bytes (AccuracyVerifier hashes each batch's x and labels commitments in turn)."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from stakelearn.errors import InputError
from stakelearn.pipeline.contracts.protocol import evaluation_commitment
from stakelearn.prover.accuracy import AccuracyOutcome, evaluation_set_hash

COMMITMENTS = [bytes([i]) * 64 for i in range(4)]  # two batches: x, labels, x, labels


def test_the_commitment_is_the_salted_hash_of_the_commitments_in_order():
    salt = keccak(text="salt")
    assert evaluation_set_hash(COMMITMENTS) == keccak(b"".join(COMMITMENTS))
    assert evaluation_commitment(salt, COMMITMENTS) == keccak(
        encode(["bytes32", "bytes32"], [salt, keccak(b"".join(COMMITMENTS))])
    )
    swapped = [COMMITMENTS[1], COMMITMENTS[0], *COMMITMENTS[2:]]
    assert evaluation_commitment(salt, swapped) != evaluation_commitment(salt, COMMITMENTS)
    assert evaluation_commitment(bytes(32), COMMITMENTS) != evaluation_commitment(salt, COMMITMENTS)


def test_an_outcome_hashes_its_commitments_as_the_verifier_does():
    outcome = AccuracyOutcome(3, 8, "00" * 64, [c.hex() for c in COMMITMENTS])
    assert outcome.evaluation_hash == keccak(b"".join(COMMITMENTS))


def test_a_commitment_is_64_bytes():
    with pytest.raises(InputError):
        evaluation_set_hash([bytes(63)])
