// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IPinnedVerifier} from "./IPinnedVerifier.sol";

/// @title The proven Multi-Krum round check (RoundVerifier.sol)
interface IRoundVerifier is IPinnedVerifier {
    /// @notice A round's proof was verified; `selectedMask` has bit i set when client i was kept.
    event RoundVerified(bytes32 indexed commitmentsHash, uint256 selectedMask);

    error RoundVerifier__WrongCircuit(bytes32 vkaDigest);
    error RoundVerifier__CommitmentCount(uint256 length);
    error RoundVerifier__CommitmentMismatch();
    error RoundVerifier__InstanceCount(uint256 length);
    error RoundVerifier__InstanceNotInField(uint256 index);
    error RoundVerifier__AggregateMismatch();
    error RoundVerifier__MaskNotBinary(uint256 index);
    error RoundVerifier__ProofRejected();

    /// @notice Number of updates the pinned round circuit takes.
    function clients() external view returns (uint256);

    /// @notice f, the Byzantine clients the pinned circuit's Krum tolerates.
    function byzantine() external view returns (uint256);

    /// @notice m, the clients the pinned circuit's Multi-Krum keeps.
    function selected() external view returns (uint256);

    /// @notice The pinned circuit's aggregation rule: 0 Multi-Krum, 1 NNM then Multi-Krum
    /// (circuits/krum.py RULES). Its scores are the raw Krum scores either way.
    function aggregation() external view returns (uint8);

    /// @notice How many chunk proofs a round of this verifier takes (0: one proof, RoundVerifier).
    function chunks() external view returns (uint256);

    /// @notice keccak256 of the 64-byte commitment an absent client's slot must hold: the
    /// commitment of the all-zero vector, whose slot tag 0 the circuit never selects.
    function absentCommitment() external view returns (bytes32);

    /// @notice Reverts unless `proof` is valid for the pinned circuit over exactly `commitments`
    /// (n updates then the aggregate, 64 bytes each); returns the selection bitmask, the
    /// slots the circuit treated as absent (tag 0) and the n proven Krum scores.
    function verifyRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) external returns (uint256 selectedMask, uint256 absentMask, uint256[] memory scores);
}
