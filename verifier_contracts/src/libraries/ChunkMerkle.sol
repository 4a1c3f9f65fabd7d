// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ChunkMerkle
/// @notice The Merkle root of a vector's K chunk commitments, its 64-byte commitment being
/// `root || uint256(K)` (prover.chunked.chunk_root is the Python twin). Leaves: keccak256 of each
/// 64-byte chunk commitment, then bytes32(0) up to P, the smallest power of two >= K; a node is
/// keccak256(left || right); the root of one leaf is the leaf. A tree, not a hash chain, so that a
/// dispute checks one chunk against the signed root with a path of log2(P) hashes.
/// @dev `append` and `close` build the roots one leaf at a time, as staging receives the chunk
/// proofs: a tree's state is its "frontier", one word per level, the last left node of that level
/// still waiting for its right sibling.
library ChunkMerkle {
    error ChunkMerkle__NoLeaves();
    error ChunkMerkle__IndexOutOfRange(uint256 index, uint256 levels);

    /// @notice The levels of the tree over `count` leaves: log2(P), 0 for one leaf.
    function depth(uint256 count) internal pure returns (uint256 levels) {
        while ((uint256(1) << levels) < count) {
            ++levels;
        }
    }

    /// @notice The root over `leaves` (already hashed), padded with zero leaves to a power of two.
    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        if (leaves.length == 0) revert ChunkMerkle__NoLeaves();
        uint256 width = uint256(1) << depth(leaves.length);
        bytes32[] memory level = new bytes32[](width); // a copy: the caller's leaves stay as they are
        for (uint256 i = 0; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
        while (width > 1) {
            width >>= 1;
            for (uint256 i = 0; i < width; ++i) {
                level[i] = node(level[2 * i], level[2 * i + 1]);
            }
        }
        return level[0];
    }

    /// @notice The root that leaf number `index` with its `path` (siblings bottom-up) leads to.
    /// The caller compares it with the signed root and checks `index` < K, `path.length` = depth(K).
    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata path) internal pure returns (bytes32 current) {
        // an index beyond the path's tree would alias a leaf inside it
        if (path.length < 256 && index >> path.length != 0) revert ChunkMerkle__IndexOutOfRange(index, path.length);
        current = leaf;
        for (uint256 l = 0; l < path.length; ++l) {
            current = (index >> l) & 1 == 0 ? node(current, path[l]) : node(path[l], current);
        }
    }

    /// @notice Adds leaf number `index` to the tree whose frontier is frontier[from:from + levels].
    function append(bytes32[] memory frontier, uint256 from, uint256 levels, uint256 index, bytes32 leaf)
        internal
        pure
    {
        bytes32 current = leaf;
        for (uint256 l = 0; l < levels; ++l) {
            // a left child waits for its sibling; a right child completes its parent, one level up
            if ((index >> l) & 1 == 0) {
                frontier[from + l] = current;
                return;
            }
            current = node(frontier[from + l], current);
        }
    }

    /// @notice The root once `leaf` is the last leaf, number `index`, of the tree whose frontier
    /// (before it) is frontier[from:from + levels]: right of it there is only padding.
    function close(bytes32[] memory frontier, uint256 from, uint256 levels, uint256 index, bytes32 leaf)
        internal
        pure
        returns (bytes32 current)
    {
        current = leaf;
        bytes32 padding; // the all-zero subtree of level l
        for (uint256 l = 0; l < levels; ++l) {
            current = (index >> l) & 1 == 0 ? node(current, padding) : node(frontier[from + l], current);
            padding = node(padding, padding);
        }
    }

    function node(bytes32 left, bytes32 right) internal pure returns (bytes32 parent) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            parent := keccak256(0x00, 0x40)
        }
    }
}
