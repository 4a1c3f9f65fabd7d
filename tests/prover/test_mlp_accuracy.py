"""The accuracy of an MLP aggregated in chunks, proven in batches of samples (real ezkl): every
batch's proof carries the chunk circuit's commitments of the model's chunks, the counts add up
to the numpy reference's, and AccuracyVerifier takes the batches in one call, hashing the whole
evaluation set's commitments (each batch's x then labels) as the requester committed to them."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from stakelearn.circuits.accuracy import Classifier, correct_count, split_model_input
from stakelearn.circuits.krum import KrumParams
from stakelearn.models.digits import DigitsClassifier, flatten
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.verifiers import deploy_accuracy_verifier
from stakelearn.prover.accuracy import (
    accuracy_call_arguments,
    evaluation_set_commitments,
    evaluation_set_hash,
    prove_accuracy,
    verify_accuracy,
)
from stakelearn.prover.accuracy_circuit import paired_chunked_circuits
from stakelearn.prover.chunked import ChunkCircuit, chunk_root
from stakelearn.prover.circuit import prepare
from stakelearn.prover.commitments import commit
from stakelearn.verifier_contracts.build import load_artifact

HIDDEN, SCALE_BITS, MAX_INT, CHUNK = 32, 9, 1024, 1024  # 64 -> 32 -> 10: 2,410 parameters in 3 chunks
N, F, M = 5, 1, 3
BATCH, SAMPLES = 2, 4


@pytest.fixture(scope="module")
def mlp_task(tmp_path_factory):
    """A trained MLP as a round aggregates it (m quantized models summed), its accuracy proven in
    two batches of two samples at the chunk circuit's logrows."""
    pixels, labels = load_digits(return_X_y=True)
    torch.manual_seed(0)
    net = DigitsClassifier(HIDDEN)
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = torch.tensor(pixels[SAMPLES:] / 16, dtype=torch.float32), torch.tensor(labels[SAMPLES:])
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    quantized = np.clip(np.rint(flatten(net) * 2**SCALE_BITS), -MAX_INT, MAX_INT).astype(np.int64)
    classifier = Classifier(HIDDEN, M * 2**SCALE_BITS)
    chunk, accuracy = paired_chunked_circuits(ChunkCircuit(N, F, M, CHUNK, MAX_INT), BATCH, classifier)
    model = M * quantized
    evaluation = pixels[:SAMPLES].astype(np.int64), labels[:SAMPLES].astype(np.int64)
    folder = tmp_path_factory.mktemp("mlp") / "accuracy"
    outcome = prove_accuracy(model, *evaluation, accuracy, folder)
    return model, classifier, prepare(chunk), prepare(accuracy), evaluation, folder, outcome


@pytest.mark.slow  # an MLP proven in batches over chunk commitments: about a minute
def test_the_batches_count_what_the_reference_counts_over_the_chunk_commitments(mlp_task):
    model, classifier, chunk, accuracy, (pixels, labels), folder, outcome = mlp_task
    assert KrumParams(N, F, M).m == M and accuracy.circuit.model_parts == 3
    assert outcome.correct == correct_count(model, pixels, labels, classifier) >= SAMPLES - 1
    parts = [commit(part, chunk.vk, chunk.settings, chunk.srs.path) for part in split_model_input(model, CHUNK)]
    assert outcome.model_commitment == chunk_root(parts).hex()  # what a chunked round records
    assert verify_accuracy(folder).correct == outcome.correct


@pytest.mark.slow  # an MLP proven in batches over chunk commitments: about a minute
def test_the_accuracy_verifier_takes_the_batches_in_one_call(mlp_task):
    model, _, _, accuracy, (pixels, labels), folder, outcome = mlp_task
    chain = Chain.embedded()
    verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    contract = deploy_accuracy_verifier(chain, accuracy, verifier, SAMPLES)
    assert contract.functions.batches().call() == SAMPLES // BATCH
    proof, instances, words = accuracy_call_arguments(folder, accuracy.vka)
    committed = bytes.fromhex(outcome.model_commitment)
    correct, range_error, evaluation_hash = contract.functions.verifyAccuracy(proof, instances, words, committed).call()
    assert (correct, range_error) == (outcome.correct, 0)
    # what the requester computed before any proof, in proof order
    assert evaluation_hash == evaluation_set_hash(evaluation_set_commitments(pixels, labels, accuracy))
    # the batches in the other order: the set's hash is not the requester's any more
    half = len(proof) // 2
    swapped = proof[half:] + proof[:half], instances[len(instances) // 2 :] + instances[: len(instances) // 2]
    assert contract.functions.verifyAccuracy(*swapped, words, committed).call()[2] != evaluation_hash
    # one batch proven twice does not pass for two
    doubled = proof[:half] * 2, instances[: len(instances) // 2] * 2
    assert contract.functions.verifyAccuracy(*doubled, words, committed).call()[2] != evaluation_hash
