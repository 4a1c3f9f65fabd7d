// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {PinnedVerifier} from "./PinnedVerifier.sol";
import {RoundShape} from "./RoundShape.sol";
import {IChunkedRoundVerifier} from "./interfaces/IChunkedRoundVerifier.sol";
import {ChunkMerkle} from "./libraries/ChunkMerkle.sol";

/// @title ChunkedRoundVerifier
/// @notice A RoundVerifier for rounds proven in chunks (see IChunkedRoundVerifier and
/// docs/chunked-rounds.md). The protocol calls `verifyRound` exactly as for a one-proof round.
/// Its rule is Multi-Krum (0): NNM rounds are proven in one proof.
/// @dev Chunk proof layout (ezkl, polycommit inputs): the commitments of the n tagged slices, the
/// claimed-sum slice and the mask are the first 64(n + 2) bytes of the proof; instances: partial
/// Gram (t = n(n+1)/2), mask (n), absent (n), check_error, range_tag. Combine proof instances
/// (all public): Gram (t), absent (n), then its outputs scores (n), mask (n).
/// Staging is per caller and session, so nobody can disturb another's; what it records is keyed
/// by the round's commitments and mask, both fixed by the proofs, so any stager records the same.
/// @dev Each slot's commitment is a Merkle root over its chunk commitments (ChunkMerkle). Staging
/// builds the n + 1 roots as the chunk proofs arrive, in order, keeping per slot only the tree's
/// frontier (one word per level, log2(P) words; P the smallest power of two >= CHUNKS) in the
/// Progress that travels in calldata, rather than every leaf so far: calldata and the progress
/// hash then stay (n + 1) log2(P) words whatever the chunk reached. Every chunk, the last one
/// too, is appended to the frontier, so that the off-chain twin (pipeline/contracts/chunked.py,
/// progress_after) folds a chunk without knowing CHUNKS; the last one also closes the trees.
contract ChunkedRoundVerifier is PinnedVerifier, RoundShape, IChunkedRoundVerifier {
    uint256 public immutable CHUNKS;
    uint256 private immutable _levels; // ChunkMerkle.depth(CHUNKS): a slot's frontier words
    bytes32 private immutable _chunkVkaDigest;

    mapping(address => mapping(bytes32 => bytes32)) private _progress;
    // keccak256(commitmentsHash, selectedMask) => keccak256 of the summed Gram then the absent flags
    mapping(bytes32 => bytes32) private _staged;

    /// @param combineVkaDigest_ digest of the combine circuit's VKA (vkaDigest())
    /// @param absentCommitment_ keccak256 of an absent slot's 64-byte commitment (the Merkle root
    /// over CHUNKS commitments of the all-zero tagged chunk, then CHUNKS)
    constructor(
        IHalo2VerifierReusable verifier_,
        bytes32 chunkVkaDigest_,
        bytes32 combineVkaDigest_,
        uint256 clients_,
        uint256 byzantine_,
        uint256 selected_,
        uint256 chunks_,
        bytes32 absentCommitment_
    ) PinnedVerifier(verifier_, combineVkaDigest_) RoundShape(clients_, byzantine_, selected_, 0, absentCommitment_) {
        _chunkVkaDigest = chunkVkaDigest_;
        CHUNKS = chunks_;
        _levels = ChunkMerkle.depth(chunks_);
    }

    function chunks() external view returns (uint256) {
        return CHUNKS;
    }

    function chunkVkaDigest() external view returns (bytes32) {
        return _chunkVkaDigest;
    }

    function progressHash(address stager, bytes32 session) external view returns (bytes32) {
        return _progress[stager][session];
    }

    function staged(bytes32 commitmentsHash, uint256 selectedMask) external view returns (bool) {
        return _staged[keccak256(abi.encode(commitmentsHash, selectedMask))] != 0;
    }

    function stageChunks(bytes32 session, Progress calldata progress, ChunkProof[] calldata proofs, bytes32[] calldata vka)
        external
        returns (Progress memory next)
    {
        _pinChunkCircuit(vka);
        uint256 n = _clients;
        if (progress.frontier.length != (n + 1) * _levels || progress.gram.length != n * (n + 1) / 2) {
            revert ChunkedRoundVerifier__ProgressShape();
        }
        // A fresh session (or a restart) starts from nothing; a later one from what was recorded.
        if (progress.chunks == 0) {
            next = _emptyProgress(n);
        } else {
            next = progress;
            bytes32 recorded = _progress[msg.sender][session];
            bytes32 given = keccak256(abi.encode(next));
            if (given != recorded) revert ChunkedRoundVerifier__WrongProgress(recorded, given);
        }
        if (next.chunks + proofs.length > CHUNKS) revert ChunkedRoundVerifier__TooManyChunks(next.chunks + proofs.length);
        bytes32 commitmentsHash; // set by the last chunk only
        for (uint256 p = 0; p < proofs.length; ++p) {
            commitmentsHash = _addChunk(next, proofs[p], vka);
        }
        bytes32 nextHash = keccak256(abi.encode(next));
        _progress[msg.sender][session] = nextHash;
        emit ChunksStaged(msg.sender, session, next.chunks, nextHash);
        if (commitmentsHash != 0) {
            _staged[keccak256(abi.encode(commitmentsHash, next.selectedMask))] =
                keccak256(abi.encodePacked(next.gram, _bits(next.absentMask, n)));
            emit RoundStaged(commitmentsHash, next.selectedMask);
        }
    }

    /// @notice Verifies the combine proof of a staged round; returns its selection, absent slots
    /// and scores. `commitments`: the n clients' (root, CHUNKS) commitments, then the aggregate's.
    function verifyRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) external returns (uint256 selectedMask, uint256 absentMask, uint256[] memory scores) {
        uint256 n = _clients;
        uint256 t = n * (n + 1) / 2;
        (selectedMask, absentMask) = _combineMasks(instances, vka);
        if (commitments.length != 64 * (n + 1)) revert RoundVerifier__CommitmentCount(commitments.length);
        // The combine proof's Gram and absent inputs must be exactly what the staged chunks proved;
        // checked before the proof, the costly part.
        bytes32 commitmentsHash = keccak256(commitments);
        bytes32 recorded = _staged[keccak256(abi.encode(commitmentsHash, selectedMask))];
        if (recorded == 0 || recorded != keccak256(abi.encodePacked(instances[:t + n]))) {
            revert ChunkedRoundVerifier__NotStaged(commitmentsHash, selectedMask);
        }
        if (!_accepted(proof, instances, vka)) revert RoundVerifier__ProofRejected();
        scores = instances[t + n:t + 2 * n];
        emit RoundVerified(commitmentsHash, selectedMask);
    }

    function checkChunk(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 selectedMask, uint256 absentMask, bytes32 gramHash)
    {
        _pinChunkCircuit(vka);
        (selectedMask, absentMask) = _checkChunk(proof, instances, vka, 0);
        gramHash = keccak256(abi.encodePacked(instances[:_clients * (_clients + 1) / 2]));
    }

    function checkCombine(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 selectedMask, uint256 absentMask, uint256[] memory scores, bytes32 gramHash)
    {
        uint256 n = _clients;
        uint256 t = n * (n + 1) / 2;
        (selectedMask, absentMask) = _combineMasks(instances, vka);
        if (!_accepted(proof, instances, vka)) revert RoundVerifier__ProofRejected();
        scores = instances[t + n:t + 2 * n];
        gramHash = keccak256(abi.encodePacked(instances[:t]));
    }

    function _pinChunkCircuit(bytes32[] calldata vka) private view {
        (bool pinned, bytes32 digest) = _pinnedTo(vka, _chunkVkaDigest);
        if (!pinned) revert ChunkedRoundVerifier__WrongChunkCircuit(digest);
    }

    /// @dev Every check of one chunk proof but its place in a session (`k` names it in errors):
    /// instance count and field, binary masks, check_error == 0 (the claimed slice is the selected
    /// slices' sum and every tag is right), accepted for the pinned chunk circuit.
    function _checkChunk(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka, uint256 k)
        private
        returns (uint256 selectedMask, uint256 absentMask)
    {
        uint256 n = _clients;
        uint256 t = n * (n + 1) / 2;
        if (instances.length != t + 2 * n + 2 || proof.length < 64 * (n + 2)) {
            revert ChunkedRoundVerifier__ChunkMismatch(k);
        }
        for (uint256 i = 0; i < instances.length; ++i) {
            if (instances[i] >= _FIELD_MODULUS) revert ChunkedRoundVerifier__ChunkMismatch(k);
        }
        (selectedMask, absentMask) = _bitmasks(instances, t, t + n);
        if (instances[t + 2 * n] != 0) revert ChunkedRoundVerifier__ChunkMismatch(k);
        if (!_acceptedFor(proof, instances, vka, _chunkVkaDigest)) revert ChunkedRoundVerifier__ChunkRejected(k);
    }

    /// @dev A combine proof's pinned circuit, instance count and field, and its binary mask and
    /// absent flags; not the proof itself.
    function _combineMasks(uint256[] calldata instances, bytes32[] calldata vka)
        private
        view
        returns (uint256 selectedMask, uint256 absentMask)
    {
        (bool pinned, bytes32 digest) = _pinned(vka);
        if (!pinned) revert RoundVerifier__WrongCircuit(digest);
        uint256 n = _clients;
        uint256 t = n * (n + 1) / 2;
        if (instances.length != t + 3 * n) revert RoundVerifier__InstanceCount(instances.length);
        for (uint256 i = 0; i < instances.length; ++i) {
            if (instances[i] >= _FIELD_MODULUS) revert RoundVerifier__InstanceNotInField(i);
        }
        (selectedMask, absentMask) = _bitmasks(instances, t + 2 * n, t);
    }

    /// @dev Checks one chunk proof against the session and folds it in; after the last chunk,
    /// returns keccak256 of the round's commitments (each slot's (root, CHUNKS), then the
    /// aggregate's), else zero.
    function _addChunk(Progress memory next, ChunkProof calldata chunk, bytes32[] calldata vka)
        private
        returns (bytes32 commitmentsHash)
    {
        uint256 k = next.chunks;
        (uint256 mask, uint256 absent) = _checkChunk(chunk.proof, chunk.instances, vka, k);
        if (k == 0) {
            (next.selectedMask, next.absentMask) = (mask, absent);
        } else if (mask != next.selectedMask || absent != next.absentMask) {
            revert ChunkedRoundVerifier__ChunkMismatch(k);
        }
        uint256 n = _clients;
        uint256 levels = _levels;
        bool last = k + 1 == CHUNKS;
        bytes32[] memory commitments = new bytes32[](last ? 2 * (n + 1) : 0);
        bytes calldata proof = chunk.proof;
        for (uint256 i = 0; i <= n; ++i) {
            bytes32 leaf = keccak256(proof[64 * i:64 * (i + 1)]);
            if (last) {
                // closed from the frontier before this leaf's append (which writes no word it reads)
                commitments[2 * i] = ChunkMerkle.close(next.frontier, i * levels, levels, k, leaf);
                commitments[2 * i + 1] = bytes32(k + 1);
            }
            ChunkMerkle.append(next.frontier, i * levels, levels, k, leaf);
        }
        uint256[] calldata instances = chunk.instances;
        for (uint256 j = 0; j < next.gram.length; ++j) {
            next.gram[j] = addmod(next.gram[j], instances[j], _FIELD_MODULUS);
        }
        next.chunks = k + 1;
        if (last) commitmentsHash = keccak256(abi.encodePacked(commitments));
    }

    function _emptyProgress(uint256 n) private view returns (Progress memory empty) {
        empty.frontier = new bytes32[]((n + 1) * _levels);
        empty.gram = new uint256[](n * (n + 1) / 2);
    }

    function _bits(uint256 mask, uint256 n) private pure returns (uint256[] memory flags) {
        flags = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            flags[i] = (mask >> i) & 1;
        }
    }
}
