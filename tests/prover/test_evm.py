"""The generated Solidity verifier, behind RoundVerifier, on py-evm and on anvil."""

import json

import pytest

from stakelearn.circuits.krum import krum_round
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.verifiers import verify_on_chain
from stakelearn.prover import steps
from stakelearn.prover.circuit import prepare
from stakelearn.prover.evm import generate_reusable_verifier
from stakelearn.prover.round import COMMITMENTS
from stakelearn.prover.rounds import OneProofRound
from stakelearn.verifier_contracts.build import ROOT, artifact_json, compile_all, load_artifact


@pytest.fixture(scope="module")
def embedded(small_circuit):
    return deploy_round_verifier(Chain.embedded(), OneProofRound(prepare(small_circuit)))


def expected_mask(updates, circuit) -> int:
    mask = krum_round(updates, circuit.params).mask
    assert not mask[4]  # the far-away update is flagged
    return sum(1 << i for i, kept in enumerate(mask) if kept)


def signed_commitments(folder):
    data = json.loads((folder / COMMITMENTS).read_text())
    return [*data["updates"], data["aggregate"]]


def test_verify_on_chain_accepts_valid_round(embedded, proven_round, small_circuit, small_updates):
    result = verify_on_chain(
        embedded, proven_round / steps.PROOF, prepare(small_circuit).vka, signed_commitments(proven_round)
    )
    assert result.ok, result.reason
    assert result.selected_mask == expected_mask(small_updates, small_circuit)
    assert 0 < result.gas_used < 10_000_000


def test_verify_on_chain_rejects_tampered_proof(embedded, round_copy, small_circuit):
    proof = json.loads((round_copy / steps.PROOF).read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1
    write_json_atomic(round_copy / steps.PROOF, proof)
    result = verify_on_chain(
        embedded, round_copy / steps.PROOF, prepare(small_circuit).vka, signed_commitments(round_copy)
    )
    assert not result.ok and result.reason == "RoundVerifier__ProofRejected"


def test_verify_on_chain_rejects_tampered_public_score(embedded, round_copy, small_circuit):
    proof = json.loads((round_copy / steps.PROOF).read_text())
    score = steps.felt_to_int(proof["instances"][0][4])
    proof["instances"][0][4] = (score - 1).to_bytes(32, "little").hex()
    write_json_atomic(round_copy / steps.PROOF, proof)
    result = verify_on_chain(
        embedded, round_copy / steps.PROOF, prepare(small_circuit).vka, signed_commitments(round_copy)
    )
    assert not result.ok and result.reason == "RoundVerifier__ProofRejected"


def test_verify_on_chain_rejects_swapped_update(embedded, proven_round, small_circuit):
    commitments = signed_commitments(proven_round)
    commitments[4] = commitments[0]  # the proof is over update 4, the signed one differs
    result = verify_on_chain(embedded, proven_round / steps.PROOF, prepare(small_circuit).vka, commitments)
    assert not result.ok and result.reason == "RoundVerifier__CommitmentMismatch"


def test_committed_verifier_is_what_ezkl_generates(small_circuit, tmp_path):
    prepared = prepare(small_circuit)
    generated = generate_reusable_verifier(prepared.vk, prepared.settings, prepared.srs.path, tmp_path)
    assert generated.read_text() == (ROOT / "generated" / steps.VERIFIER_SOL).read_text()


def test_committed_artifacts_are_up_to_date():
    for name, contract in compile_all().items():
        assert artifact_json(contract)["bytecode"] == "0x" + load_artifact(name).bytecode.hex(), (
            f"{name}: run python -m stakelearn.verifier_contracts.build"
        )
        assert contract.fits_eip170


@pytest.mark.anvil
def test_verify_on_anvil_accepts_valid_and_rejects_tampered(proven_round, round_copy, small_circuit, small_updates):
    prepared = prepare(small_circuit)
    with running_anvil() as node:
        deployed = deploy_round_verifier(Chain.rpc(node.url), OneProofRound(prepared))
        good = verify_on_chain(deployed, proven_round / steps.PROOF, prepared.vka, signed_commitments(proven_round))
        proof = json.loads((round_copy / steps.PROOF).read_text())
        proof["proof"][len(proof["proof"]) // 2] ^= 1
        write_json_atomic(round_copy / steps.PROOF, proof)
        bad = verify_on_chain(deployed, round_copy / steps.PROOF, prepared.vka, signed_commitments(round_copy))
    assert good.ok and good.selected_mask == expected_mask(small_updates, small_circuit), good.reason
    assert not bad.ok and bad.reason == "RoundVerifier__ProofRejected"
    assert node.process.poll() is not None  # stopped
