// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ezkl's reusable Halo2 verifier (generated/Halo2VerifierReusable.sol)
/// @notice One deployment verifies proofs of any circuit whose VK artifact (VKA) is registered.
/// Registration is open to anyone: callers must pin the digest of the VKA they expect.
interface IHalo2VerifierReusable {
    /// @notice Registers a VKA and returns its digest, keccak256 of its packed words.
    function registerVka(bytes32[] calldata vka) external returns (bytes32 vkaDigest);

    /// @notice Verifies `proof` with public `instances` against the registered `vka`.
    /// @dev Reverts when the proof is invalid. Its return data is not standard ABI: read only
    /// the first two words, (success, vkaDigest).
    function verifyProof(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bool success, bytes32 vkaDigest, int256[] memory rescaledInstances);
}
