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
    error AccuracyVerifier__NoFeatures();
    error AccuracyVerifier__TooFewClasses(uint256 classes);
    /// @dev inputMin > inputMax, or a bound beyond a field element's signed reading, +-(p - 1) / 2.
    error AccuracyVerifier__BadInputRange(int256 inputMin, int256 inputMax);

    /// @notice Number of evaluation samples the pinned accuracy circuit takes.
    function samples() external view returns (uint256);

    /// @notice How many committed inputs hold the model: 0 for one (a one-proof round's
    /// aggregate), K for a round proven in K chunks (the model commitment is then their chunk root, then K).
    function modelChunks() external view returns (uint256);

    /// @notice In how many proofs the evaluation set is proven (each of samples / batches samples).
    function batches() external view returns (uint256);

    /// @notice How many x values (features) each evaluation sample has (the 8x8 digits: 64 pixels).
    function features() external view returns (uint256);

    /// @notice How many classes the model tells apart: a label is one of 0 .. classes - 1.
    function classes() external view returns (uint256);

    /// @notice The range every x value must lie in, as integers at the circuit's input scale
    /// (the 8x8 digits: 0 .. 16). A negative value travels as the field element p - |v|.
    function inputRange() external view returns (int256 inputMin, int256 inputMax);

    /// @notice Whether the circuit can prove on an evaluation set with these values (x values
    /// sample by sample, then labels): samples x (features + 1) values, every x value a field
    /// element whose signed reading (v > (p - 1) / 2 reads as v - p) lies in inputRange(), every
    /// label below classes().
    function provable(uint256[] calldata values) external view returns (bool);

    /// @notice Reverts unless `proof` is valid for the pinned circuit with the model committed as
    /// `modelCommitment` (64 bytes: a KZG point, or a chunked model's chunk root and K); returns the correct count and the hash of the public
    /// evaluation set (keccak256 of its values, packed as uint256).
    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, bytes32 evaluationHash);
}
