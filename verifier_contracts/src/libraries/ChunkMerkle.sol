// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ChunkMerkle
/// @notice The Merkle root a chunked commitment names (prover/chunked.py `chunk_root`): leaves
/// keccak256 of each 64-byte chunk commitment, padded with zero leaves to a power of two, nodes
/// keccak256(left || right); one leaf is its own root. A slot's 64-byte commitment is
/// (root, K), so one chunk's commitment can be checked against it alone, by its path.
library ChunkMerkle {
    /// @dev The tree's height for K leaves: log2 of the smallest power of two >= K.
    function depth(uint256 leaves) internal pure returns (uint256 levels) {
        while ((uint256(1) << levels) < leaves) ++levels;
    }

    /// @dev The root of `leaves` (already hashed), padded with zero leaves.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 width = uint256(1) << depth(leaves.length);
        bytes32[] memory level = new bytes32[](width);
        for (uint256 i = 0; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
        for (; width > 1; width /= 2) {
            for (uint256 i = 0; i < width / 2; ++i) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
        }
        return level[0];
    }

    /// @dev The root `leaf` at `index` reaches through `path` (its siblings, bottom up).
    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata path) internal pure returns (bytes32 node) {
        node = leaf;
        for (uint256 level = 0; level < path.length; ++level) {
            node = (index >> level) & 1 == 0
                ? keccak256(abi.encodePacked(node, path[level]))
                : keccak256(abi.encodePacked(path[level], node));
        }
    }
}
