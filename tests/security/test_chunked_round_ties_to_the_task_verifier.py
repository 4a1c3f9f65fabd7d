"""A chunked round folder is tied to a task's ChunkedRoundVerifier off chain (security review,
finding 8): `stakelearn verify DIR` prints the chunk and combine circuits' VKA digests, and with
`--rpc-url URL --verifier ADDR` checks the folder against the deployed verifier with eth_calls
only (nothing sent): both pinned digests and the round's shape, every chunk proof through the
contract's own stageChunks, the combine proof through verifyRound once the round is staged (else
through the reusable verifier the contract calls, for the pinned digest). A folder of other
circuits is refused in one line. Before, `--verifier` was refused for a chunked folder and
`--evm` only checked it against a verifier deployed for the folder's own circuits. Real proofs:
5 clients, 16 coordinates in 2 chunks of 8."""

import json
import re
import shutil

import numpy as np
import pytest

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.chunked import chunk_calls, stage_chunks
from stakelearn.pipeline.contracts.round_on_chain import check_with_task_verifier, deploy_round_verifier
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit
from stakelearn.prover.chunked_round import CHUNKS, chunk_proof_folders, prove_chunked_round
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import ChunkedRound
from stakelearn.prover.steps import PROOF

from ..pipeline.test_cli_third_party import run_cli

N, F, M, C, D, MAX_INT = 5, 1, 3, 8, 16, 128
# what refuses a verifier of other circuits: a pinned VKA digest, or else the round's shape
FOREIGN = r"is not the one the ChunkedRoundVerifier|the ChunkedRoundVerifier at 0x[0-9a-fA-F]{40} pins"


@pytest.fixture(scope="module")
def circuits():
    return (
        prepare(ChunkCircuit(N, F, M, C, MAX_INT, num_inner_cols=4)),
        prepare(CombineCircuit(N, F, M, D, MAX_INT, num_inner_cols=4)),
    )


@pytest.fixture(scope="module")
def chunked_round(tmp_path_factory, small_updates, circuits):
    folder = tmp_path_factory.mktemp("chunked") / "round"
    prove_chunked_round(small_updates, circuits[0].circuit, folder)
    return folder


def expected_mask(updates) -> int:
    reference = krum_round(updates, CombineCircuit(N, F, M, D, MAX_INT).params)
    return sum(1 << int(i) for i in np.flatnonzero(reference.mask))


def test_a_chunked_folder_checks_against_the_task_verifier_before_and_after_staging(
    chunked_round, circuits, small_updates
):
    chain = Chain.embedded()
    deployed = deploy_round_verifier(chain, ChunkedRound(circuits[0], D, combine=circuits[1]))
    address = deployed.contract.address
    check = check_with_task_verifier(chain, address, chunked_round)
    assert (check.staged, check.selected_mask) == (2, expected_mask(small_updates))
    assert check.submitted_by == "the pinned reusable verifier"  # nothing staged yet, nothing sent by the check
    assert deployed.contract.functions.progressHash(chain.payer_address, bytes(32)).call() == bytes(32)
    calls = chunk_calls(chunk_proof_folders(chunked_round, 2), circuits[0].vka)
    stage_chunks(chain, chain.require_payer(), deployed.contract, bytes(32), calls, circuits[0].vka, 4)
    check = check_with_task_verifier(chain, address, chunked_round)
    assert check.submitted_by == "verifyRound" and check.selected_mask == expected_mask(small_updates)


def test_a_folder_of_other_circuits_is_refused(chunked_round, circuits):
    chain = Chain.embedded()
    other_combine = prepare(CombineCircuit(N, F, M, 20, MAX_INT, num_inner_cols=4))  # rounds of d = 20
    deployed = deploy_round_verifier(chain, ChunkedRound(circuits[0], 20, combine=other_combine))
    with pytest.raises(StakeLearnError, match=FOREIGN):
        check_with_task_verifier(chain, deployed.contract.address, chunked_round)


def test_a_chunk_proof_the_verifier_rejects_is_refused(chunked_round, circuits, tmp_path):
    chain = Chain.embedded()
    deployed = deploy_round_verifier(chain, ChunkedRound(circuits[0], D, combine=circuits[1]))
    copy = tmp_path / "round"
    shutil.copytree(chunked_round, copy)
    path = copy / CHUNKS / "chunk-00001" / PROOF
    proof = json.loads(path.read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1  # past the commitments
    path.write_text(json.dumps(proof))
    with pytest.raises(StakeLearnError, match="rejects chunk 1: ChunkedRoundVerifier__ChunkRejected"):
        check_with_task_verifier(chain, deployed.contract.address, copy)


@pytest.mark.anvil
def test_verify_cli_ties_a_chunked_folder_to_the_task_verifier_on_a_node(chunked_round, circuits, tmp_path):
    with running_anvil() as node:
        chain = Chain.rpc(node.url)
        task_verifier = deploy_round_verifier(chain, ChunkedRound(circuits[0], D, combine=circuits[1])).contract.address
        other_combine = prepare(CombineCircuit(N, F, M, 20, MAX_INT, num_inner_cols=4))
        foreign = deploy_round_verifier(chain, ChunkedRound(circuits[0], 20, combine=other_combine)).contract.address
        nonce = chain.w3.eth.get_transaction_count(chain.payer_address)
        home = {"STAKELEARN_HOME": str(tmp_path / "empty-home")}  # a third party: nothing built, nothing cached
        result = run_cli("verify", chunked_round, "--rpc-url", node.url, "--verifier", task_verifier, env=home)
        assert result.returncode == 0, result.stderr
        assert f"ChunkedRoundVerifier at {task_verifier} accepts the round" in result.stdout
        manifest = json.loads((chunked_round / "round.json").read_text())
        for part in ("chunk_circuit", "combine_circuit"):
            assert manifest[part]["vka_digest"] in result.stdout
        result = run_cli("verify", chunked_round, "--rpc-url", node.url, "--verifier", foreign, env=home)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        # two builds of circuits this small may share a VKA: then the shape (2 chunks, not 3) refuses it
        assert re.search(FOREIGN, result.stderr), result.stderr
        assert chain.w3.eth.get_transaction_count(chain.payer_address) == nonce  # nothing was sent


def test_an_address_that_is_no_chunked_round_verifier_is_refused(chunked_round, circuits):
    chain = Chain.embedded()
    reusable = deploy_round_verifier(
        chain, ChunkedRound(circuits[0], D, combine=circuits[1])
    ).verifier  # ezkl's verifier: no pins
    for address in (reusable, chain.payer_address):  # a contract of another kind, an account without code
        with pytest.raises(StakeLearnError, match=f"{address} is not a ChunkedRoundVerifier"):
            check_with_task_verifier(chain, address, chunked_round)
