// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./IHalo2VerifierReusable.sol";

/// @title RoundVerifier
/// @notice Accepts a proven Multi-Krum round only if the proof is valid for the pinned round
/// circuit AND was made over exactly the update commitments the caller supplies (the clients'
/// signed commitments), and the claimed aggregate is the sum of the selected updates.
/// @dev Proof layout (ezkl, polycommit inputs): the KZG commitment of input i is the 64 bytes at
/// offset 64*i of the proof; inputs are the n updates, then the aggregate (claimed sum).
/// Public instances: scores (n), mask (n), sum_error, range_tag.
contract RoundVerifier {
    /// @dev BN254 scalar field modulus: instances at or above it are not field elements.
    uint256 private constant _FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    IHalo2VerifierReusable private immutable _verifier;
    bytes32 private immutable _vkaDigest;
    uint256 private immutable _clients;

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

    /// @param verifier the deployed reusable verifier
    /// @param vkaDigest digest of the round circuit's VKA (pinned: anyone can register a VKA)
    /// @param clients n, the number of updates the circuit takes
    constructor(IHalo2VerifierReusable verifier, bytes32 vkaDigest, uint256 clients) {
        _verifier = verifier;
        _vkaDigest = vkaDigest;
        _clients = clients;
    }

    function verifier() external view returns (address) {
        return address(_verifier);
    }

    function vkaDigest() external view returns (bytes32) {
        return _vkaDigest;
    }

    function clients() external view returns (uint256) {
        return _clients;
    }

    /// @notice Verifies a round and returns the selection as a bitmask.
    /// @param commitments the n update commitments then the aggregate's, 64 bytes each
    function verifyRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) external returns (uint256 selectedMask) {
        selectedMask = _checkRound(proof, instances, vka, commitments);
        emit RoundVerified(keccak256(commitments), selectedMask);
    }

    function _checkRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) internal returns (uint256 selectedMask) {
        bytes32 digest = keccak256(abi.encodePacked(vka));
        if (digest != _vkaDigest) revert RoundVerifier__WrongCircuit(digest);

        uint256 n = _clients;
        if (commitments.length != 64 * (n + 1)) revert RoundVerifier__CommitmentCount(commitments.length);
        if (proof.length < commitments.length || keccak256(proof[:commitments.length]) != keccak256(commitments)) {
            revert RoundVerifier__CommitmentMismatch();
        }

        if (instances.length != 2 * n + 2) revert RoundVerifier__InstanceCount(instances.length);
        for (uint256 i = 0; i < instances.length; ++i) {
            if (instances[i] >= _FIELD_MODULUS) revert RoundVerifier__InstanceNotInField(i);
        }
        if (instances[2 * n] != 0) revert RoundVerifier__AggregateMismatch();
        for (uint256 i = 0; i < n; ++i) {
            uint256 bit = instances[n + i];
            if (bit > 1) revert RoundVerifier__MaskNotBinary(i);
            selectedMask |= bit << i;
        }

        (bool called, bytes memory result) = address(_verifier).call(
            abi.encodeCall(IHalo2VerifierReusable.verifyProof, (proof, instances, vka))
        );
        if (!called || result.length < 64) revert RoundVerifier__ProofRejected();
        (bool success, bytes32 returnedDigest) = abi.decode(result, (bool, bytes32));
        if (!success || returnedDigest != _vkaDigest) revert RoundVerifier__ProofRejected();
    }
}
