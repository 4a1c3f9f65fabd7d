"""A proven round verifies, is bound to the clients' commitments, and rejects tampering."""

import json

import pytest

from stakelearn.circuits.krum import krum_round, tagged_inputs
from stakelearn.errors import InputError, ProofError
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import input_json, prepare
from stakelearn.prover.commitments import commit, proof_commitments
from stakelearn.prover.round import COMMITMENTS, prove_round, verify_round


def test_prove_round_outcome_matches_reference(proven_round, small_circuit, small_updates):
    outcome = verify_round(proven_round)
    reference = krum_round(small_updates, small_circuit.params)
    assert outcome.scores == reference.scores.tolist()
    assert outcome.mask == reference.mask.astype(int).tolist()
    assert 4 not in outcome.selected  # the far-away update is flagged
    assert outcome.check_error == 0


def test_off_circuit_commitments_equal_the_proof(proven_round, small_circuit, small_updates):
    prepared = prepare(small_circuit)
    proof = bytes(json.loads((proven_round / steps.PROOF).read_text())["proof"])
    total = krum_round(small_updates, small_circuit.params).total
    rows = [*tagged_inputs(small_updates), total]  # each update with its slot tag, then the aggregate
    expected = [commit(row, prepared.vk, prepared.settings, prepared.srs.path) for row in rows]
    assert proof_commitments(proof, small_circuit.n + 1) == expected


def test_verify_round_rejects_tampered_proof(round_copy):
    proof = json.loads((round_copy / steps.PROOF).read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1
    write_json_atomic(round_copy / steps.PROOF, proof)
    with pytest.raises(ProofError):
        verify_round(round_copy)


def test_verify_round_rejects_tampered_public_score(round_copy):
    proof = json.loads((round_copy / steps.PROOF).read_text())
    score = steps.felt_to_int(proof["instances"][0][4])
    proof["instances"][0][4] = (score - 1).to_bytes(32, "little").hex()  # make the outlier look better
    write_json_atomic(round_copy / steps.PROOF, proof)
    with pytest.raises(ProofError):
        verify_round(round_copy)


def test_verify_round_rejects_proof_over_swapped_update(proven_round, small_circuit, small_updates, tmp_path):
    swapped = small_updates.copy()
    swapped[4] = small_updates[0]  # the aggregator replaces the outlier's update by an honest one
    other = tmp_path / "swapped"
    prove_round(swapped, small_circuit, other)
    signed = json.loads((proven_round / COMMITMENTS).read_text())
    write_json_atomic(other / COMMITMENTS, signed)  # checked against what the clients signed
    with pytest.raises(ProofError, match="commitment of update 4"):
        verify_round(other)


def test_verify_round_rejects_swapped_commitments(round_copy):
    commitments = json.loads((round_copy / COMMITMENTS).read_text())
    commitments["updates"][0], commitments["updates"][1] = commitments["updates"][1], commitments["updates"][0]
    write_json_atomic(round_copy / COMMITMENTS, commitments)
    with pytest.raises(ProofError, match="commitment of update 0"):
        verify_round(round_copy)


def test_circuit_has_no_proof_for_out_of_range_update(small_circuit, small_updates, tmp_path):
    prepared = prepare(small_circuit)
    x = small_updates.copy()
    x[2, 3] = 10**6  # beyond the range check's lookup table (under 2^(logrows+1) entries)
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(x), krum_round(x, small_circuit.params).total))
    with pytest.raises(ProofError):
        steps.gen_witness(tmp_path / steps.INPUT, prepared.compiled, tmp_path / steps.WITNESS)
        steps.prove(tmp_path / steps.WITNESS, prepared.compiled, prepared.pk, tmp_path / steps.PROOF, prepared.srs.path)
        steps.verify(tmp_path / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path)


def test_prove_round_rejects_values_beyond_fixed_point(small_circuit, small_updates, tmp_path):
    x = small_updates.copy()
    x[1, 0] = 129
    with pytest.raises(InputError, match="update 1"):
        prove_round(x, small_circuit, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prove_round_refuses_existing_folder(small_circuit, small_updates, tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="already exists"):
        prove_round(small_updates, small_circuit, tmp_path / "out")
