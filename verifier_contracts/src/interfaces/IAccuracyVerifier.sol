// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IPinnedVerifier} from "./IPinnedVerifier.sol";

/// @title The proven accuracy check (AccuracyVerifier.sol)
interface IAccuracyVerifier is IPinnedVerifier {
    error AccuracyVerifier__WrongCircuit(bytes32 vkaDigest);
    error AccuracyVerifier__CommitmentMismatch();
    error AccuracyVerifier__InstanceCount(uint256 length);
    error AccuracyVerifier__InstanceNotInField(uint256 index);
    error AccuracyVerifier__LabelNotAClass();
    error AccuracyVerifier__WrongModelCommitmentLength(uint256 length);
    error AccuracyVerifier__ProofRejected();
    error AccuracyVerifier__BatchesDoNotDivide(uint256 samples, uint256 batches);

    /// @notice Number of evaluation samples the pinned accuracy circuit takes.
    function samples() external view returns (uint256);

    /// @notice How many committed inputs hold the model: 0 for one (a one-proof round's
    /// aggregate), K for a round proven in K chunks (the model commitment is then their chain).
    function modelChunks() external view returns (uint256);

    /// @notice In how many proofs the evaluation set is proven (each of samples / batches samples).
    function batches() external view returns (uint256);

    /// @notice Whether the circuit can prove on an evaluation set with these values (pixels row
    /// by row, then labels): its length and every value within the circuit's ranges.
    function provable(uint256[] calldata values) external view returns (bool);

    /// @notice Reverts unless `proof` is valid for the pinned circuit with the model committed as
    /// `modelCommitment` (64 bytes: a KZG point, or a chunked model's chain and K); returns the correct count and the hash of the public
    /// evaluation set (keccak256 of its values, packed as uint256).
    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, bytes32 evaluationHash);
}
