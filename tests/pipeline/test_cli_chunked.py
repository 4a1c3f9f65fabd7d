"""A round proven in chunks through the CLI: each client commits with the task's --chunk and
signs the chain of its chunk commitments, the aggregator proves in chunks over exactly what was
signed, a third party verifies the folder (with ezkl, and on an EVM), and the folder lands on
chain through the protocol's submitRound."""

import json
import shutil

import numpy as np
import pytest
from web3.logs import DISCARD

from stakelearn.circuits.krum import krum_round
from stakelearn.pipeline.apps.audit import audit_chain
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.signing import signed_record
from stakelearn.pipeline.node.aggregator import submit_round
from stakelearn.pipeline.node.client import sign_update_commitment
from stakelearn.pipeline.node.signer import SlashingProtection
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit
from stakelearn.prover.chunked_round import CHUNKS, COMBINE, prove_chunked_round, verify_chunked_round
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import ChunkedRound
from stakelearn.prover.steps import INPUT, PROOF

from .test_cli import assert_one_line_error
from .test_cli_third_party import CIRCUIT, commit_cli, run_cli

CHUNK = ("--chunk", "8")  # the session's 16-coordinate updates in 2 chunks


@pytest.fixture(scope="module")
def chunked_cli_round(tmp_path_factory, small_updates):
    from eth_account import Account

    folder = tmp_path_factory.mktemp("chunked-cli")
    updates, signed = [], []
    for slot, row in enumerate(small_updates):
        updates.append(folder / f"client_{slot}.npy")
        np.save(updates[-1], row / 128.0)
        signed.append(folder / f"signed_{slot}.json")
        result = commit_cli(updates[-1], slot, signed[-1], Account.create().key.hex(), extra=CHUNK)
        assert result.returncode == 0, result.stderr
    out = folder / "round"
    result = run_cli("prove", *updates, *CIRCUIT, *CHUNK, "--signed", *signed, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_prove_in_chunks_selects_as_the_round(chunked_cli_round, small_updates, small_circuit):
    out, result = chunked_cli_round
    assert "round proven in 2 chunks of 8 coordinates" in result.stdout
    outcome = verify_chunked_round(out)
    reference = krum_round(small_updates, small_circuit.params)
    assert outcome.scores == reference.scores.tolist()
    assert outcome.mask == reference.mask.astype(int).tolist()


def test_a_third_party_verifies_a_chunked_round_on_an_evm(chunked_cli_round, tmp_path):
    out, _ = chunked_cli_round
    result = run_cli("verify", out, "--evm", env={"STAKELEARN_HOME": str(tmp_path / "empty-home")})
    assert result.returncode == 0, result.stderr
    assert "accepted the round" in result.stdout and "chunked round verified" in result.stdout


def flip_proof_byte(folder):
    path = folder / CHUNKS / "chunk-00001" / PROOF
    proof = json.loads(path.read_text())
    proof["proof"][64 * 7 + 3] ^= 1
    path.write_text(json.dumps(proof))
    return "proof"


def edit_chunk_input(folder):
    path = folder / CHUNKS / "chunk-00000" / INPUT
    data = json.loads(path.read_text())
    data["input_data"][2][0] += 1  # client 2's first coordinate
    path.write_text(json.dumps(data))
    return "committed to"


def edit_combine_input(folder):
    path = folder / COMBINE / INPUT
    data = json.loads(path.read_text())
    data["input_data"][1][0] = 1 - data["input_data"][1][0]  # client 0's absent flag
    path.write_text(json.dumps(data))
    return "public input"


def add_a_file_to_a_circuit_folder(folder):
    (folder / "chunk-circuit" / "notes.txt").write_text("unchecked")
    return "notes.txt"


@pytest.mark.parametrize(
    "tamper", [flip_proof_byte, edit_chunk_input, edit_combine_input, add_a_file_to_a_circuit_folder]
)
def test_a_tampered_file_in_the_folder_is_refused(chunked_cli_round, tmp_path, tamper):
    copy = tmp_path / "round"
    shutil.copytree(chunked_cli_round[0], copy)
    fragment = tamper(copy)
    assert_one_line_error(run_cli("verify", copy), fragment)


def test_a_killed_prover_keeps_the_chunks_it_proved(chunked_cli_round, small_updates, tmp_path):
    out = tmp_path / "again"
    partial = out.with_name("again.partial")
    shutil.copytree(chunked_cli_round[0] / CHUNKS / "chunk-00000", partial / CHUNKS / "chunk-00000")
    kept = (partial / CHUNKS / "chunk-00000" / PROOF).read_bytes()
    prove_chunked_round(small_updates, ChunkCircuit(5, 1, 3, 8, 128, num_inner_cols=4), out)
    assert (out / CHUNKS / "chunk-00000" / PROOF).read_bytes() == kept
    assert not partial.exists()
    verify_chunked_round(out)


def test_a_chunked_round_folder_lands_through_submit_and_passes_the_audit(world, small_updates, tmp_path):
    chunk = prepare(ChunkCircuit(5, 1, 3, 8, 128, num_inner_cols=4))
    combine = prepare(CombineCircuit(5, 1, 3, 16, 128, num_inner_cols=4))
    chunked = ChunkedRound(chunk, 16, combine=combine)
    verifier = deploy_round_verifier(world.chain, chunked, world.protocol.round_verifier.verifier)
    accuracy = world.protocol.accuracy_verifier.address
    world.chain.execute(
        world.chain.payer, world.protocol.tasks, "approveVerifiers", verifier.contract.address, accuracy
    )
    task_id = world.start_task(verifiers=(verifier.contract.address, accuracy))
    chain_id, contract = world.chain.chain_id, world.protocol.tasks.address
    signed, protection = [], SlashingProtection(tmp_path / "signed.sqlite")  # the clients' signing records
    for slot, (client, row) in enumerate(zip(world.clients, small_updates)):
        commitment, signature = sign_update_commitment(
            client, row, slot, chunked, chain_id, contract, task_id, 1, protection
        )
        signed.append(signed_record(slot, client.address, commitment, signature))
    protection.close()
    folder = tmp_path / "round"
    prove_chunked_round(small_updates, chunk.circuit, folder, signed=signed)
    receipt = submit_round(world.protocol, world.clients[0], task_id, 1, folder, chunks_per_transaction=1)
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    reference = krum_round(small_updates, chunk.circuit.params)
    assert event["args"]["selectedMask"] == sum(1 << int(i) for i in np.flatnonzero(reference.mask))
    # an auditor rebuilds the history from the chain alone: the staged chunks stay on record
    problems, rounds = audit_chain(world.protocol, task_id)
    assert problems == [] and rounds[0]["selected_mask"] == event["args"]["selectedMask"]
