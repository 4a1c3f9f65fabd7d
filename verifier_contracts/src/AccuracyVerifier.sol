// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {PinnedVerifier} from "./PinnedVerifier.sol";
import {IAccuracyVerifier} from "./interfaces/IAccuracyVerifier.sol";

/// @title AccuracyVerifier
/// @notice Accepts an accuracy proof only if it is valid for the pinned accuracy circuit AND was
/// made over exactly the model commitment the caller supplies, and every label was a class;
/// returns how many samples the model classified correctly and the hash of the (public)
/// evaluation set it was measured on.
/// @dev Proof layout (ezkl, polycommit inputs): the model's KZG commitment is the first 64 bytes
/// of the proof; for a model aggregated by a round proven in K chunks, the model comes as K
/// inputs and the proof starts with their K commitments, which this contract chains exactly as
/// ChunkedRoundVerifier chains the aggregate's (h_0 = 0, h_{k+1} = keccak256(h_k || c_k), then K).
/// Public instances: correct, label_error, range_tag, then the evaluation set (samples x 64
/// pixels, then samples labels).
/// @dev A large model's circuit takes few samples per proof, so an evaluation set may be proven in
/// B batches of samples / B: `proof` is then the B proofs one after the other (a circuit's proofs
/// all have one length) and `instances` their B instance vectors; every batch must carry the same
/// model commitment, the counts add up, and the set's hash is taken over all its pixels then all
/// its labels, as for one proof.
/// @dev Its external functions, events and errors are declared (and documented) in IAccuracyVerifier.
contract AccuracyVerifier is PinnedVerifier, IAccuracyVerifier {
    uint256 private constant _FEATURES = 64;
    uint256 private constant _GREY_LEVELS = 16;
    uint256 private constant _CLASSES = 10;
    uint256 private immutable _samples;
    uint256 private immutable _modelChunks; // 0: the model is one committed input
    uint256 private immutable _batches;

    constructor(
        IHalo2VerifierReusable verifier_,
        bytes32 vkaDigest_,
        uint256 samples_,
        uint256 modelChunks_,
        uint256 batches_
    ) PinnedVerifier(verifier_, vkaDigest_) {
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

    /// @notice Whether the circuit can prove on `values` (pixels row by row, then labels): the
    /// right length, pixels in 0..16, labels in 0..9.
    function provable(uint256[] calldata values) external view returns (bool) {
        uint256 pixels = _samples * _FEATURES;
        if (values.length != pixels + _samples) return false;
        for (uint256 i = 0; i < pixels; ++i) {
            if (values[i] > _GREY_LEVELS) return false;
        }
        for (uint256 i = pixels; i < values.length; ++i) {
            if (values[i] >= _CLASSES) return false;
        }
        return true;
    }

    function verifyAccuracy(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, bytes32 evaluationHash) {
        (bool pinned, bytes32 digest) = _pinned(vka);
        if (!pinned) revert AccuracyVerifier__WrongCircuit(digest);
        if (modelCommitment.length != 64) revert AccuracyVerifier__WrongModelCommitmentLength(modelCommitment.length);
        uint256 batchSamples = _samples / _batches;
        uint256 instanceCount = 3 + 65 * batchSamples;
        if (instances.length != _batches * instanceCount) revert AccuracyVerifier__InstanceCount(instances.length);
        if (proof.length % _batches != 0) revert AccuracyVerifier__CommitmentMismatch();
        uint256 proofLength = proof.length / _batches;
        bytes32 model = keccak256(modelCommitment);
        uint256[] memory values = new uint256[](65 * _samples); // all pixels, then all labels
        for (uint256 b = 0; b < _batches; ++b) {
            bytes calldata batchProof = proof[b * proofLength:(b + 1) * proofLength];
            uint256[] calldata batch = instances[b * instanceCount:(b + 1) * instanceCount];
            if (keccak256(_provenModel(batchProof)) != model) revert AccuracyVerifier__CommitmentMismatch();
            // Only the counts need to be canonical: an evaluation value at or above the modulus
            // changes the set's hash, which then matches no requester's commitment.
            for (uint256 i = 0; i < 3; ++i) {
                if (batch[i] >= _FIELD_MODULUS) revert AccuracyVerifier__InstanceNotInField(b * instanceCount + i);
            }
            if (batch[1] != 0) revert AccuracyVerifier__LabelNotAClass();
            if (!_accepted(batchProof, batch, vka)) revert AccuracyVerifier__ProofRejected();
            correct += batch[0];
            uint256 pixels = 64 * batchSamples;
            for (uint256 i = 0; i < pixels; ++i) {
                values[b * pixels + i] = batch[3 + i];
            }
            for (uint256 i = 0; i < batchSamples; ++i) {
                values[64 * _samples + b * batchSamples + i] = batch[3 + pixels + i];
            }
        }
        return (correct, keccak256(abi.encodePacked(values)));
    }

    /// @dev The model commitment the proof carries, in the chain's 64-byte form.
    function _provenModel(bytes calldata proof) private view returns (bytes memory) {
        uint256 parts = _modelChunks == 0 ? 1 : _modelChunks;
        if (proof.length < 64 * parts) revert AccuracyVerifier__CommitmentMismatch();
        if (_modelChunks == 0) return proof[:64];
        bytes32 chain;
        for (uint256 k = 0; k < parts; ++k) {
            chain = keccak256(abi.encodePacked(chain, proof[64 * k:64 * (k + 1)]));
        }
        return abi.encodePacked(chain, parts);
    }
}
