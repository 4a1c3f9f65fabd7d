// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {PinnedVerifier} from "./PinnedVerifier.sol";
import {RoundShape} from "./RoundShape.sol";

/// @title RoundVerifier
/// @notice Accepts a proven round (Multi-Krum, or NNM then Multi-Krum) only if the proof is valid for the pinned round
/// circuit AND was made over exactly the update commitments the caller supplies (the clients'
/// signed commitments), and the claimed aggregate is the sum of the selected updates.
/// @dev Proof layout (ezkl, polycommit inputs): the KZG commitment of input i is the 64 bytes at
/// offset 64*i of the proof; inputs are the n tagged updates, then the aggregate (claimed sum).
/// Public instances: scores (n), mask (n), absent (n), check_error, range_tag.
/// An absent client's slot holds the all-zero vector (its slot tag 0), which the circuit never
/// selects; its commitment is circuit-specific, so it is pinned here as `absentCommitment`.
/// @dev Its external functions, events and errors are declared (and documented) in IRoundVerifier.
contract RoundVerifier is PinnedVerifier, RoundShape {
    /// @param verifier_ the deployed reusable verifier
    /// @param vkaDigest_ digest of the round circuit's VKA
    /// @param clients_ n, the number of updates the circuit takes
    /// @param byzantine_ f, the Byzantine clients the circuit's Krum tolerates
    /// @param selected_ m, the clients its Multi-Krum keeps
    /// @param aggregation_ the circuit's rule: 0 Multi-Krum, 1 NNM then Multi-Krum (same outputs)
    /// @param absentCommitment_ keccak256 of the commitment of an absent slot (the zero vector)
    constructor(
        IHalo2VerifierReusable verifier_,
        bytes32 vkaDigest_,
        uint256 clients_,
        uint256 byzantine_,
        uint256 selected_,
        uint8 aggregation_,
        bytes32 absentCommitment_
    ) PinnedVerifier(verifier_, vkaDigest_) RoundShape(clients_, byzantine_, selected_, aggregation_, absentCommitment_) {}

    function chunks() external pure returns (uint256) {
        return 0;
    }

    /// @notice Verifies a round and returns the selection and the slots the circuit treated as
    /// absent (tag 0), as bitmasks, and the proven scores.
    /// @param commitments the n update commitments then the aggregate's, 64 bytes each
    function verifyRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) external returns (uint256 selectedMask, uint256 absentMask, uint256[] memory scores) {
        (selectedMask, absentMask) = _checkRound(proof, instances, vka, commitments);
        scores = instances[:_clients];
        emit RoundVerified(keccak256(commitments), selectedMask);
    }

    function _checkRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) internal returns (uint256 selectedMask, uint256 absentMask) {
        (bool pinned, bytes32 digest) = _pinned(vka);
        if (!pinned) revert RoundVerifier__WrongCircuit(digest);

        uint256 n = _clients;
        if (commitments.length != 64 * (n + 1)) revert RoundVerifier__CommitmentCount(commitments.length);
        if (proof.length < commitments.length || keccak256(proof[:commitments.length]) != keccak256(commitments)) {
            revert RoundVerifier__CommitmentMismatch();
        }

        if (instances.length != 3 * n + 2) revert RoundVerifier__InstanceCount(instances.length);
        for (uint256 i = 0; i < instances.length; ++i) {
            if (instances[i] >= _FIELD_MODULUS) revert RoundVerifier__InstanceNotInField(i);
        }
        // check_error: 0 iff the claimed sum is the selected updates' sum and every slot tag is right
        if (instances[3 * n] != 0) revert RoundVerifier__AggregateMismatch();
        (selectedMask, absentMask) = _bitmasks(instances, n, 2 * n);

        if (!_accepted(proof, instances, vka)) revert RoundVerifier__ProofRejected();
    }
}
