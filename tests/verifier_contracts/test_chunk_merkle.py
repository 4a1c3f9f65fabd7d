"""A chunked commitment's Merkle tree (prover.chunked) is ChunkMerkle.sol's, run on the embedded
EVM through a harness compiled with the library: the roots for K = 1, 2, 3, 5, 8, every chunk's
path, and the frontier staging grows one chunk at a time (ChunkedRoundVerifier._addChunk)."""

import os

import pytest
from eth_utils import keccak

from stakelearn.errors import InputError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.prover.chunked import chunk_path, chunk_root, frontier_after, merkle_depth, path_root
from stakelearn.verifier_contracts.build import ROOT
from stakelearn.verifier_contracts.solc import compile_sources

LIBRARY = "src/libraries/ChunkMerkle.sol"
HARNESS = """
pragma solidity ^0.8.20;
import {ChunkMerkle} from "./src/libraries/ChunkMerkle.sol";
contract ChunkMerkleHarness {
    function root(bytes32[] memory leaves) external pure returns (bytes32) {
        return ChunkMerkle.root(leaves);
    }
    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata path) external pure returns (bytes32) {
        return ChunkMerkle.rootOf(leaf, index, path);
    }
    function append(bytes32[] memory frontier, uint256 index, bytes32 leaf) external pure returns (bytes32[] memory) {
        ChunkMerkle.append(frontier, 0, frontier.length, index, leaf);
        return frontier;
    }
    function close(bytes32[] memory frontier, uint256 index, bytes32 leaf) external pure returns (bytes32) {
        return ChunkMerkle.close(frontier, 0, frontier.length, index, leaf);
    }
}
"""


@pytest.fixture(scope="module")
def harness():
    chain = Chain.embedded()
    compiled = compile_sources({LIBRARY: (ROOT / LIBRARY).read_text(), "Harness.sol": HARNESS})["ChunkMerkleHarness"]
    address, _ = chain.deploy(compiled)
    return chain, chain.contract(address, compiled.abi)


def commitments_of(count: int) -> list[bytes]:
    return [os.urandom(64) for _ in range(count)]  # any 64 bytes hash alike: no KZG needed


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_the_root_and_every_path_are_the_librarys(harness, count):
    harness = harness[1].functions
    commitments = commitments_of(count)
    leaves = [keccak(c) for c in commitments]
    root = chunk_root(commitments)
    assert root[32:] == count.to_bytes(32, "big")
    assert harness.root(leaves).call() == root[:32]
    for k, leaf in enumerate(leaves):
        path = chunk_path(commitments, k)
        assert len(path) == merkle_depth(count)
        assert path_root(leaf, k, path) == harness.rootOf(leaf, k, path).call() == root[:32]
        if path:  # a path proves only its own chunk's place
            assert path_root(leaf, k ^ 1, path) != root[:32]
            assert path_root(leaves[k - 1 if k else 1], k, path) != root[:32]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_staging_grows_the_same_root_one_chunk_at_a_time(harness, count):
    harness = harness[1].functions
    commitments = commitments_of(count)
    frontier = (bytes(32),) * merkle_depth(count)
    for k, commitment in enumerate(commitments):
        leaf = keccak(commitment)
        if k == count - 1:
            assert harness.close(list(frontier), k, leaf).call() == chunk_root(commitments)[:32]
        appended = frontier_after(frontier, k, leaf)
        assert tuple(harness.append(list(frontier), k, leaf).call()) == appended
        frontier = appended


def test_a_path_proves_a_place_in_the_tree_not_that_it_holds_a_chunk(harness):
    """The padding leaves have paths too: a dispute checks the index against K itself. An index
    beyond the tree would alias a leaf inside it, so the library refuses it."""
    chain, contract = harness
    commitments = commitments_of(3)
    root, path = chunk_root(commitments)[:32], chunk_path(commitments, 2)
    padding_path = [keccak(commitments[2]), path[1]]
    assert path_root(bytes(32), 3, padding_path) == contract.functions.rootOf(bytes(32), 3, padding_path).call() == root
    leaf = keccak(commitments[2])
    answer = chain.call(contract.address, contract.encode_abi("rootOf", args=[leaf, 2 + 4, path]))
    assert answer.revert_data[:4] == keccak(text="ChunkMerkle__IndexOutOfRange(uint256,uint256)")[:4]
    with pytest.raises(InputError):
        chunk_path(commitments, 3)
    with pytest.raises(InputError):
        chunk_root([])
