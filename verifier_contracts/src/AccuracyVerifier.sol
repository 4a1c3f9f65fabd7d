// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {PinnedVerifier} from "./PinnedVerifier.sol";
import {IAccuracyVerifier} from "./interfaces/IAccuracyVerifier.sol";
import {ChunkMerkle} from "./libraries/ChunkMerkle.sol";

/// @title AccuracyVerifier
/// @notice Accepts an accuracy proof only if it is valid for the pinned accuracy circuit AND was
/// made over exactly the model commitment the caller supplies, and every label was a class;
/// returns how many samples the model classified correctly and the hash of the (public)
/// evaluation set it was measured on. The set's shape is the circuit's, given at deployment:
/// `features` x values per sample within [inputMin, inputMax], labels below `classes` (the 8x8
/// digits: 64, 0..16, 10).
/// @dev Proof layout (ezkl, polycommit inputs): the model's KZG commitment is the first 64 bytes
/// of the proof; for a model aggregated by a round proven in K chunks, the model comes as K
/// inputs and the proof starts with their K commitments, whose Merkle root this contract takes
/// exactly as ChunkedRoundVerifier takes the aggregate's (ChunkMerkle.root, then K).
/// Public instances: correct, label_error, range_tag, then the evaluation set (samples x features
/// x values row by row, integers at the circuit's input scale, a negative one as the field
/// element p - |v|; then samples labels).
/// @dev A large model's circuit takes few samples per proof, so an evaluation set may be proven in
/// B batches of samples / B: `proof` is then the B proofs one after the other (a circuit's proofs
/// all have one length) and `instances` their B instance vectors; every batch must carry the same
/// model commitment, the counts add up, and the set's hash is taken over all its x values then
/// all its labels, as for one proof.
/// @dev Its external functions, events and errors are declared (and documented) in IAccuracyVerifier.
contract AccuracyVerifier is PinnedVerifier, IAccuracyVerifier {
    /// @dev (p - 1) / 2: a field element above it reads as negative, v - p (ezkl's signed encoding).
    int256 private constant _HALF_FIELD = int256((_FIELD_MODULUS - 1) / 2);
    uint256 private immutable _samples;
    uint256 private immutable _features;
    uint256 private immutable _classes;
    int256 private immutable _inputMin;
    int256 private immutable _inputMax;
    // The input range as field elements: its values >= 0 as they are, its negatives as p - |v|,
    // two windows [from, from + span] (a missing one repeats the other) that no value >= p is in.
    uint256 private immutable _nonNegativeFrom;
    uint256 private immutable _nonNegativeSpan;
    uint256 private immutable _negativeFrom;
    uint256 private immutable _negativeSpan;
    uint256 private immutable _modelChunks; // 0: the model is one committed input
    uint256 private immutable _batches;

    constructor(
        IHalo2VerifierReusable verifier_,
        bytes32 vkaDigest_,
        uint256 samples_,
        uint256 features_,
        uint256 classes_,
        int256 inputMin_,
        int256 inputMax_,
        uint256 modelChunks_,
        uint256 batches_
    ) PinnedVerifier(verifier_, vkaDigest_) {
        if (batches_ == 0 || samples_ % batches_ != 0) revert AccuracyVerifier__BatchesDoNotDivide(samples_, batches_);
        if (features_ == 0) revert AccuracyVerifier__NoFeatures();
        // one class would make every prediction right
        if (classes_ < 2) revert AccuracyVerifier__TooFewClasses(classes_);
        // within the signed reading's range, so that the two windows are exactly the range
        if (inputMin_ > inputMax_ || inputMin_ < -_HALF_FIELD || inputMax_ > _HALF_FIELD) {
            revert AccuracyVerifier__BadInputRange(inputMin_, inputMax_);
        }
        (uint256 nonNegativeFrom, uint256 nonNegativeSpan, uint256 negativeFrom, uint256 negativeSpan) =
            _inputWindows(inputMin_, inputMax_);
        _samples = samples_;
        _features = features_;
        _classes = classes_;
        _inputMin = inputMin_;
        _inputMax = inputMax_;
        _nonNegativeFrom = nonNegativeFrom;
        _nonNegativeSpan = nonNegativeSpan;
        _negativeFrom = negativeFrom;
        _negativeSpan = negativeSpan;
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

    function features() external view returns (uint256) {
        return _features;
    }

    function classes() external view returns (uint256) {
        return _classes;
    }

    function inputRange() external view returns (int256 inputMin, int256 inputMax) {
        return (_inputMin, _inputMax);
    }

    function provable(uint256[] calldata values) external view returns (bool) {
        uint256 xs = _samples * _features;
        if (values.length != xs + _samples) return false;
        (uint256 from0, uint256 span0) = (_nonNegativeFrom, _nonNegativeSpan);
        (uint256 from1, uint256 span1) = (_negativeFrom, _negativeSpan);
        uint256 classes_ = _classes;
        // A value is in a window iff value - from <= span: below `from` the subtraction wraps to
        // above any span. Unchecked for that, and for gas (a reveal checks thousands of values).
        unchecked {
            for (uint256 i = 0; i < xs; ++i) {
                uint256 v = values[i];
                if (v - from0 > span0 && v - from1 > span1) return false;
            }
            for (uint256 i = xs; i < values.length; ++i) {
                if (values[i] >= classes_) return false;
            }
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
        uint256 instanceCount = 3 + (_features + 1) * batchSamples;
        if (instances.length != _batches * instanceCount) revert AccuracyVerifier__InstanceCount(instances.length);
        if (proof.length % _batches != 0) revert AccuracyVerifier__CommitmentMismatch();
        uint256 proofLength = proof.length / _batches;
        bytes32 model = keccak256(modelCommitment);
        uint256[] memory values = new uint256[]((_features + 1) * _samples); // all x values, then all labels
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
            uint256 xs = _features * batchSamples;
            for (uint256 i = 0; i < xs; ++i) {
                values[b * xs + i] = batch[3 + i];
            }
            for (uint256 i = 0; i < batchSamples; ++i) {
                values[_features * _samples + b * batchSamples + i] = batch[3 + xs + i];
            }
        }
        return (correct, keccak256(abi.encodePacked(values)));
    }

    /// @dev The input range's two windows of field elements (see the immutables), for a range
    /// within +-(p - 1) / 2.
    function _inputWindows(int256 inputMin_, int256 inputMax_)
        private
        pure
        returns (uint256 nonNegativeFrom, uint256 nonNegativeSpan, uint256 negativeFrom, uint256 negativeSpan)
    {
        if (inputMax_ >= 0) {
            nonNegativeFrom = inputMin_ > 0 ? uint256(inputMin_) : 0;
            nonNegativeSpan = uint256(inputMax_) - nonNegativeFrom;
        }
        if (inputMin_ < 0) {
            negativeFrom = _FIELD_MODULUS - uint256(-inputMin_);
            negativeSpan = uint256((inputMax_ < 0 ? inputMax_ : int256(-1)) - inputMin_);
        }
        if (inputMax_ < 0) (nonNegativeFrom, nonNegativeSpan) = (negativeFrom, negativeSpan);
        if (inputMin_ >= 0) (negativeFrom, negativeSpan) = (nonNegativeFrom, nonNegativeSpan);
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
