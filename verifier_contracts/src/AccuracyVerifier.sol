// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {PinnedVerifier} from "./PinnedVerifier.sol";
import {IAccuracyVerifier} from "./interfaces/IAccuracyVerifier.sol";
import {ChunkMerkle} from "./libraries/ChunkMerkle.sol";

/// @title AccuracyVerifier
/// @notice Accepts an accuracy proof only if it is valid for the pinned accuracy circuit AND was
/// made over exactly the model commitment the caller supplies; returns how many samples the model
/// classified correctly, how many of the set's values the circuit found out of range, and the
/// hash of the evaluation set's commitments the proof carries (the set itself is a committed
/// input, never public: the circuit checks its ranges, the requester's task commits to the hash).
/// @dev Proof layout (ezkl, polycommit inputs): the model's KZG commitment is the first 64 bytes
/// of the proof; for a model aggregated by a round proven in K chunks, the model comes as K
/// inputs and the proof starts with their K commitments, whose Merkle root this contract takes
/// exactly as ChunkedRoundVerifier takes the aggregate's (ChunkMerkle.root, then K).
/// The set's two commitments (its x values', then its labels') follow the model's.
/// Public instances: correct, range_error (0 iff every x value is within the calibrated input
/// range and every label a class), range_tag.
/// @dev A large model's circuit takes few samples per proof, so an evaluation set may be proven in
/// B batches of samples / B: `proof` is then the B proofs one after the other (a circuit's proofs
/// all have one length) and `instances` their B instance vectors; every batch must carry the same
/// model commitment, the counts add up, and the set's hash is taken over every batch's two set
/// commitments in proof order.
/// @dev Its external functions, events and errors are declared (and documented) in IAccuracyVerifier.
contract AccuracyVerifier is PinnedVerifier, IAccuracyVerifier {
    uint256 private constant _INSTANCES = 3; // correct, range_error, range_tag
    uint256 private constant _SET_BYTES = 128; // the set's two commitments per proof: x, labels
    uint256 private immutable _samples;
    uint256 private immutable _modelChunks; // 0: the model is one committed input
    uint256 private immutable _batches;

    constructor(IHalo2VerifierReusable verifier_, bytes32 vkaDigest_, uint256 samples_, uint256 modelChunks_, uint256 batches_)
        PinnedVerifier(verifier_, vkaDigest_)
    {
        if (batches_ == 0 || samples_ % batches_ != 0) revert AccuracyVerifier__BatchesDoNotDivide(samples_, batches_);
        _samples = samples_;
        _modelChunks = modelChunks_;
        _batches = batches_;
    }

    function batches() external view returns (uint256) {
        return _batches;
    }

    function samples() external view returns (uint256) {
        return _samples;
    }

    function modelChunks() external view returns (uint256) {
        return _modelChunks;
    }

    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, uint256 rangeError, bytes32 setHash) {
        (bool pinned, bytes32 digest) = _pinned(vka);
        if (!pinned) revert AccuracyVerifier__WrongCircuit(digest);
        if (modelCommitment.length != 64) revert AccuracyVerifier__WrongModelCommitmentLength(modelCommitment.length);
        if (instances.length != _batches * _INSTANCES) revert AccuracyVerifier__InstanceCount(instances.length);
        if (proof.length % _batches != 0) revert AccuracyVerifier__CommitmentMismatch();
        uint256 proofLength = proof.length / _batches;
        uint256 setOffset = 64 * (_modelChunks == 0 ? 1 : _modelChunks); // the set's commitments follow the model's
        if (proofLength < setOffset + _SET_BYTES) revert AccuracyVerifier__CommitmentMismatch();
        bytes32 model = keccak256(modelCommitment);
        bytes memory set = new bytes(_batches * _SET_BYTES);
        for (uint256 b = 0; b < _batches; ++b) {
            bytes calldata batchProof = proof[b * proofLength:(b + 1) * proofLength];
            uint256[] calldata batch = instances[b * _INSTANCES:(b + 1) * _INSTANCES];
            if (keccak256(_provenModel(batchProof)) != model) revert AccuracyVerifier__CommitmentMismatch();
            // The counts must be canonical: the verifier reads them mod p.
            for (uint256 i = 0; i < 2; ++i) {
                if (batch[i] >= _FIELD_MODULUS) revert AccuracyVerifier__InstanceNotInField(b * _INSTANCES + i);
            }
            if (!_accepted(batchProof, batch, vka)) revert AccuracyVerifier__ProofRejected();
            correct += batch[0];
            rangeError += batch[1];
            bytes calldata commitments = batchProof[setOffset:setOffset + _SET_BYTES];
            assembly ("memory-safe") {
                calldatacopy(add(add(set, 32), mul(b, _SET_BYTES)), commitments.offset, _SET_BYTES)
            }
        }
        return (correct, rangeError, keccak256(set));
    }

    /// @dev The model commitment the proof carries, in the chain's 64-byte form.
    function _provenModel(bytes calldata proof) private view returns (bytes memory) {
        uint256 parts = _modelChunks == 0 ? 1 : _modelChunks;
        if (proof.length < 64 * parts) revert AccuracyVerifier__CommitmentMismatch();
        if (_modelChunks == 0) return proof[:64];
        bytes32[] memory leaves = new bytes32[](parts);
        for (uint256 k = 0; k < parts; ++k) {
            leaves[k] = keccak256(proof[64 * k:64 * (k + 1)]);
        }
        return abi.encodePacked(ChunkMerkle.root(leaves), parts);
    }
}
