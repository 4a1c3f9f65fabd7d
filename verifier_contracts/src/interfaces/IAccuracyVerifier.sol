// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IPinnedVerifier} from "./IPinnedVerifier.sol";

/// @title The proven accuracy check (AccuracyVerifier.sol)
interface IAccuracyVerifier is IPinnedVerifier {
    error AccuracyVerifier__WrongCircuit(bytes32 vkaDigest);
    error AccuracyVerifier__CommitmentMismatch();
    error AccuracyVerifier__InstanceCount(uint256 length);
    error AccuracyVerifier__InstanceNotInField(uint256 index);
    error AccuracyVerifier__WrongModelCommitmentLength(uint256 length);
    error AccuracyVerifier__ProofRejected();
    error AccuracyVerifier__BatchesDoNotDivide(uint256 samples, uint256 batches);

    /// @notice Number of evaluation samples the pinned accuracy circuit takes.
    function samples() external view returns (uint256);

    /// @notice How many committed inputs hold the model: 0 for one (a one-proof round's
    /// aggregate), K for a round proven in K chunks (the model commitment is then their chunk root, then K).
    function modelChunks() external view returns (uint256);

    /// @notice In how many proofs the evaluation set is proven (each of samples / batches samples).
    function batches() external view returns (uint256);

    /// @notice Reverts unless `proof` is valid for the pinned circuit with the model committed as
    /// `modelCommitment` (64 bytes: a KZG point, or a chunked model's chunk root and K); returns the
    /// correct count, the number of the set's values out of range (x beyond the circuit's input
    /// range, labels no class: 0 for a provable set) and keccak256 of the set's commitments the
    /// proofs carry (each batch's x then labels, 64 bytes each, in proof order).
    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, uint256 rangeError, bytes32 setHash);
}
