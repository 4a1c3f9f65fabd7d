// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./IHalo2VerifierReusable.sol";

/// @title AccuracyVerifier
/// @notice Accepts an accuracy proof only if it is valid for the pinned accuracy circuit AND was
/// made over exactly the model commitment the caller supplies, and every label was a class;
/// returns how many samples the model classified correctly and the hash of the (public)
/// evaluation set it was measured on.
/// @dev Proof layout (ezkl, polycommit inputs): the model's KZG commitment is the first 64 bytes
/// of the proof. Public instances: correct, label_error, range_tag, then the evaluation set
/// (samples x 64 pixels, then samples labels).
contract AccuracyVerifier {
    uint256 private constant _FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    IHalo2VerifierReusable private immutable _verifier;
    bytes32 private immutable _vkaDigest;
    uint256 private immutable _samples;

    error AccuracyVerifier__WrongCircuit(bytes32 vkaDigest);
    error AccuracyVerifier__CommitmentMismatch();
    error AccuracyVerifier__InstanceCount(uint256 length);
    error AccuracyVerifier__InstanceNotInField(uint256 index);
    error AccuracyVerifier__LabelNotAClass();
    error AccuracyVerifier__WrongModelCommitmentLength(uint256 length);
    error AccuracyVerifier__ProofRejected();

    constructor(IHalo2VerifierReusable verifier, bytes32 vkaDigest, uint256 samples_) {
        _verifier = verifier;
        _vkaDigest = vkaDigest;
        _samples = samples_;
    }

    function samples() external view returns (uint256) {
        return _samples;
    }

    function vkaDigest() external view returns (bytes32) {
        return _vkaDigest;
    }

    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, bytes32 evaluationHash) {
        bytes32 digest = keccak256(abi.encodePacked(vka));
        if (digest != _vkaDigest) revert AccuracyVerifier__WrongCircuit(digest);
        if (modelCommitment.length != 64) revert AccuracyVerifier__WrongModelCommitmentLength(modelCommitment.length);
        if (proof.length < 64 || keccak256(proof[:64]) != keccak256(modelCommitment)) {
            revert AccuracyVerifier__CommitmentMismatch();
        }
        if (instances.length != 3 + 65 * _samples) revert AccuracyVerifier__InstanceCount(instances.length);
        // Only the counts need to be canonical: an evaluation value at or above the modulus
        // changes the set's hash, which then matches no requester's commitment.
        for (uint256 i = 0; i < 3; ++i) {
            if (instances[i] >= _FIELD_MODULUS) revert AccuracyVerifier__InstanceNotInField(i);
        }
        if (instances[1] != 0) revert AccuracyVerifier__LabelNotAClass();

        (bool called, bytes memory result) = address(_verifier).call(
            abi.encodeCall(IHalo2VerifierReusable.verifyProof, (proof, instances, vka))
        );
        if (!called || result.length < 64) revert AccuracyVerifier__ProofRejected();
        (bool success, bytes32 returnedDigest) = abi.decode(result, (bool, bytes32));
        if (!success || returnedDigest != _vkaDigest) revert AccuracyVerifier__ProofRejected();
        return (instances[0], keccak256(abi.encodePacked(instances[3:])));
    }
}
