"""`stakelearn verify` of an accuracy folder names the evaluation set its count is on (security
review, finding 10 b): beside the count it prints the set's hash, the value AccuracyVerifier
computes from the proof's public set and the requester's commitment covers, so a reader can tie
the count to the set the requester committed to. Before, it printed the count alone."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from eth_abi import decode
from eth_utils import keccak
from sklearn.datasets import load_digits

from stakelearn.circuits.accuracy import CLASSES, FEATURES, MODEL_LENGTH
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import evaluation_commitment
from stakelearn.pipeline.contracts.verifiers import deploy_accuracy_verifier
from stakelearn.prover.accuracy import COMMITMENTS, accuracy_call_arguments, evaluation_set_commitments, prove_accuracy
from stakelearn.verifier_contracts.build import load_artifact


@pytest.fixture(scope="module")
def accuracy_folder(tmp_path_factory, small_accuracy):
    data = load_digits()
    samples = small_accuracy.circuit.samples
    pixels, labels = data.data.astype(np.int64)[:samples], data.target.astype(np.int64)[:samples]
    model = np.zeros(MODEL_LENGTH, dtype=np.int64)
    model[CLASSES * FEATURES :] = np.arange(CLASSES)  # class 9 wins every sample
    folder = tmp_path_factory.mktemp("accuracy") / "acc"
    prove_accuracy(model, pixels, labels, small_accuracy.circuit, folder)
    return folder, pixels, labels


def test_verify_prints_the_hash_of_the_set_the_count_is_on(accuracy_folder, small_accuracy):
    folder, pixels, labels = accuracy_folder
    result = subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", "verify", str(folder)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"(\d+) of (\d+) correct .* hash is 0x([0-9a-f]{64})", result.stdout)
    assert found, result.stdout
    correct, samples, printed = int(found[1]), int(found[2]), bytes.fromhex(found[3])
    assert (correct, samples) == (int((labels == 9).sum()), len(labels))
    # the hash AccuracyVerifier computes from the proof (an eth_call on the embedded chain) ...
    chain = Chain.embedded()
    reusable, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    contract = deploy_accuracy_verifier(chain, small_accuracy, reusable, samples)
    proof, instances, words = accuracy_call_arguments(folder, small_accuracy.vka)
    model = bytes.fromhex(json.loads((folder / COMMITMENTS).read_text())["model"])
    answer = chain.call(contract.address, contract.encode_abi("verifyAccuracy", args=[proof, instances, words, model]))
    assert answer.ok, answer.reason
    assert decode(["uint256", "uint256", "bytes32"], answer.data) == (correct, 0, printed)
    # ... and the one the requester's commitment to the set covers: its commitments, computed before
    # any proof from the set (pixels row by row, then labels)
    salt = bytes(range(32))
    commitments = evaluation_set_commitments(pixels, labels, small_accuracy)
    assert evaluation_commitment(salt, commitments) == keccak(salt + printed)  # abi.encode(salt, hash)
