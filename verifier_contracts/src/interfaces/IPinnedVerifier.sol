// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title A wrapper of ezkl's reusable verifier pinned to one circuit (PinnedVerifier.sol)
/// @notice The reusable verifier accepts a proof for any registered VKA and anyone can register
/// one, so a pinned verifier accepts only proofs checked against its own circuit's VKA.
interface IPinnedVerifier {
    /// @notice The reusable verifier (IHalo2VerifierReusable) that checks the proofs.
    function verifier() external view returns (address);

    /// @notice keccak256 of the packed VKA of the only circuit whose proofs are accepted.
    function vkaDigest() external view returns (bytes32);
}
