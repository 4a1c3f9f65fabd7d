"""Chunked rounds with ezkl: chunk proofs and a combine proof verify, give the round's scores
and selection, are bound to the clients' chunk commitments, and reject tampering."""

import json
import shutil

import numpy as np
import pytest

from stakelearn.circuits.chunk import chunked_gram, split_chunks, split_vector, tag_slices
from stakelearn.circuits.krum import krum_round
from stakelearn.errors import ProofError
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.chunked import (
    ChunkCircuit,
    CombineCircuit,
    check_chunked_round,
    chunk_input_json,
    prove_chunk,
    prove_combine,
    verify_chunk,
    verify_combine,
)
from stakelearn.prover.circuit import prepare
from stakelearn.prover.commitments import commit

N, F, M, D, C, MAX_INT = 5, 1, 3, 16, 8, 128


@pytest.fixture(scope="module")
def circuits():
    chunk = prepare(ChunkCircuit(N, F, M, C, MAX_INT, num_inner_cols=4))
    combined = prepare(CombineCircuit(N, F, M, D, MAX_INT, num_inner_cols=4))
    return chunk, combined


def prove_chunked(circuits, updates, folder, absent=None):
    """Prove a round as chunks and a combine; return the outcomes and the reference round."""
    chunk, combined = circuits
    reference = krum_round(updates, combined.circuit.params, absent, combined.circuit.absent_distance)
    mask = reference.mask.astype(int)
    chunks = [
        prove_chunk(chunk, tag_slices(slices, absent), part, mask, folder / f"chunk-{k}")
        for k, (slices, part) in enumerate(zip(split_chunks(updates, C), split_vector(reference.total, C)))
    ]
    return chunks, prove_combine(combined, chunked_gram(updates, C), folder / "combine", absent), reference


@pytest.fixture(scope="module")
def proven(circuits, small_updates, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunked")
    chunks, combined, reference = prove_chunked(circuits, small_updates, folder)
    return folder, chunks, combined, reference


def signed_lists(chunks, absent=(), n=N):
    """What each client signs: its chunk commitments in order (here read back from the proofs)."""
    return [None if i in absent else [c.commitments[i] for c in chunks] for i in range(n)]


def test_chunked_round_matches_the_round(proven):
    _, chunks, combined, reference = proven
    assert combined.scores == reference.scores.tolist()
    assert combined.mask == reference.mask.astype(int).tolist()
    assert 4 not in np.flatnonzero(combined.mask)  # the far-away update is left out
    check_chunked_round(chunks, combined, signed_lists(chunks), [0] * N)


def test_chunk_commitments_are_the_clients_own(proven, circuits, small_updates):
    chunk, _ = circuits
    for k, slices in enumerate(split_chunks(small_updates, C)):
        expected = [commit(row, chunk.vk, chunk.settings, chunk.srs.path).hex() for row in tag_slices(slices)]
        assert proven[1][k].commitments[:N] == expected


def test_chunked_round_with_an_absent_client(absence_updates, tmp_path):
    """Six clients (f = 1, m = 3): a round may leave one absent (five may leave none)."""
    n = len(absence_updates)
    six = (
        prepare(ChunkCircuit(n, F, M, C, MAX_INT, num_inner_cols=4)),
        prepare(CombineCircuit(n, F, M, D, MAX_INT, num_inner_cols=4)),
    )
    absent = np.arange(n) == 2
    x = absence_updates.copy()
    x[absent] = 0
    chunks, combined, reference = prove_chunked(six, x, tmp_path, absent)
    assert combined.mask == reference.mask.astype(int).tolist()
    assert combined.mask[2] == 0
    check_chunked_round(chunks, combined, signed_lists(chunks, absent=(2,), n=n), absent.astype(int).tolist())


def test_wrong_claimed_sum_slice_is_refused(circuits, proven, small_updates, tmp_path):
    chunk, _ = circuits
    mask = np.array(proven[2].mask)
    wrong = (mask[:, None] * small_updates[:, :C]).sum(axis=0) + np.eye(C, dtype=np.int64)[0]
    with pytest.raises(ProofError, match="check_error"):
        prove_chunk(chunk, tag_slices(small_updates[:, :C]), wrong, mask, tmp_path / "wrong")


def test_proof_of_a_wrong_claimed_sum_does_not_verify(circuits, proven, small_updates, tmp_path):
    """Proven anyway (the refusal skipped), the circuit's own error output rejects it."""
    chunk, _ = circuits
    mask = np.array(proven[2].mask)
    wrong = (mask[:, None] * small_updates[:, :C]).sum(axis=0) + np.eye(C, dtype=np.int64)[0]
    folder = tmp_path / "forced"
    folder.mkdir()
    write_json_atomic(folder / steps.INPUT, chunk_input_json(tag_slices(small_updates[:, :C]), wrong, mask))
    steps.gen_witness(folder / steps.INPUT, chunk.compiled, folder / steps.WITNESS)
    chunk.prove_in_child("proving a wrong sum", folder)
    with pytest.raises(ProofError, match="check_error"):
        verify_chunk(chunk, folder)


def tampered_copy(folder, tmp_path, position, delta=1):
    """A copy of a proof folder with public instance ``position`` moved by ``delta``."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    proof = json.loads((copy / steps.PROOF).read_text())
    value = steps.felt_to_int(proof["instances"][0][position]) + delta
    proof["instances"][0][position] = (value % FIELD).to_bytes(32, "little").hex()
    write_json_atomic(copy / steps.PROOF, proof)
    return copy


FIELD = 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001  # BN254's scalar field


def test_tampered_partial_gram_does_not_verify(circuits, proven, tmp_path):
    chunk, _ = circuits
    with pytest.raises(ProofError):
        verify_chunk(chunk, tampered_copy(proven[0] / "chunk-0", tmp_path, position=1))


def test_tampered_public_mask_does_not_verify(circuits, proven, tmp_path):
    """The mask output is the committed mask input: it cannot be changed after proving."""
    chunk, _ = circuits
    first_mask_bit = N * (N + 1) // 2
    delta = 1 - 2 * proven[1][0].mask[0]
    with pytest.raises(ProofError):
        verify_chunk(chunk, tampered_copy(proven[0] / "chunk-0", tmp_path, first_mask_bit, delta))


def test_tampered_combine_gram_does_not_verify(circuits, proven, tmp_path):
    _, combined = circuits
    with pytest.raises(ProofError):
        verify_combine(combined, tampered_copy(proven[0] / "combine", tmp_path, position=0))


def test_combine_over_another_gram_is_not_the_round(circuits, proven, small_updates, tmp_path):
    """A valid combine proof over a Gram matrix that is not the chunks' sum is refused."""
    folder, chunks, _, _ = proven
    _, combined = circuits
    other = chunked_gram(small_updates, C)
    other[4, 4] -= 1000  # make the outlier look closer to the others
    forged = prove_combine(combined, other, tmp_path / "forged")
    with pytest.raises(ProofError, match="not the sum"):
        check_chunked_round(chunks, forged, signed_lists(chunks), [0] * N)


def test_chunks_bound_to_signed_order_and_mask(proven):
    _, chunks, combined, _ = proven
    signed = signed_lists(chunks)
    with pytest.raises(ProofError, match="signed"):
        check_chunked_round(chunks[::-1], combined, signed, [0] * N)  # chunk proofs swapped
    other = type(combined)(combined.gram, combined.absent, combined.scores, combined.mask[::-1])
    with pytest.raises(ProofError, match="mask"):
        check_chunked_round(chunks, other, signed, [0] * N)
    with pytest.raises(ProofError, match="absent"):
        check_chunked_round(chunks, combined, signed, [0, 0, 0, 0, 1])


def test_compiled_chunk_circuit_reports_another_slots_tag(circuits, small_updates, tmp_path):
    """Client 1's chunk (tag 2) in slot 0: a copied chunk commitment cannot be proven."""
    chunk, _ = circuits
    tagged = tag_slices(small_updates[:, :C])
    tagged[0] = tagged[1]
    mask = np.array([1, 1, 1, 0, 0])
    total = (mask[:, None] * tagged[:, :-1]).sum(axis=0)
    write_json_atomic(tmp_path / steps.INPUT, chunk_input_json(tagged, total, mask))
    witness = steps.gen_witness(tmp_path / steps.INPUT, chunk.compiled, tmp_path / steps.WITNESS)
    outputs = [steps.felt_to_int(v) for v in witness["outputs"][0]]
    assert outputs[N * (N + 1) // 2 + 2 * N] == (2 * (2 - 1)) ** 2  # check_error
    with pytest.raises(ProofError, match="check_error"):
        prove_chunk(chunk, tagged, total, mask, tmp_path / "copied")


def test_combine_takes_gram_entries_above_two_to_the_24(tmp_path):
    d = 4096  # a Gram entry can reach d * 128^2 = 2^26
    combined = prepare(CombineCircuit(N, F, M, d, MAX_INT, num_inner_cols=4))
    updates = np.random.default_rng(0).integers(-MAX_INT, MAX_INT + 1, size=(N, d))
    gram = chunked_gram(updates, 256)
    assert np.abs(gram).max() > 2**24
    outcome = prove_combine(combined, gram, tmp_path / "combine")
    assert outcome.scores == krum_round(updates, CombineCircuit(N, F, M, d, MAX_INT).params).scores.tolist()


def test_the_chunk_size_is_the_largest_power_of_two_that_fits_the_memory():
    from stakelearn.prover.chunked_round import chunk_size_for
    from stakelearn.prover.circuit import RoundCircuit, estimated_peak_mb, natural_logrows

    def peak(circuit):
        return estimated_peak_mb(natural_logrows(circuit), 4)

    assert chunk_size_for(N, F, M, 64, MAX_INT, 10_000, num_inner_cols=4) == 64  # one proof fits
    budget = 150  # MB: more than a chunk of 8 needs, less than a round of d = 4,096
    assert peak(RoundCircuit(N, F, M, 4096, MAX_INT, 4)) > budget
    chunk = chunk_size_for(N, F, M, 4096, MAX_INT, budget, num_inner_cols=4)
    assert peak(ChunkCircuit(N, F, M, chunk, MAX_INT, num_inner_cols=4)) <= budget
    assert peak(ChunkCircuit(N, F, M, 2 * chunk, MAX_INT, num_inner_cols=4)) > budget
