// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IRoundVerifier} from "./IRoundVerifier.sol";

/// @title A Multi-Krum round proven in chunks (ChunkedRoundVerifier.sol)
/// @notice The d coordinates of a round split into CHUNKS chunks: one chunk proof per chunk
/// (partial Gram matrix, sum check under the mask) and one combine proof (scores and mask from
/// the summed Gram matrix). Chunk proofs are staged first, in order, in as many transactions as
/// gas allows; `verifyRound` (IRoundVerifier) then checks the combine proof against them.
///
/// A client's 64-byte commitment in a chunked round is (root, CHUNKS): `root` is the Merkle root
/// (libraries/ChunkMerkle.sol) over the 64-byte commitments c_k of its tagged chunks, leaves
/// keccak256(c_k) padded with zero leaves to a power of two, so that one chunk can be checked
/// against it alone, with a path, and staging can build it one chunk proof at a time. The
/// aggregate's is the same over the claimed-sum chunks. A client signs that one value (EIP-712,
/// as for a whole update).
interface IChunkedRoundVerifier is IRoundVerifier {
    /// @notice What a staging session has checked so far; passed back in by the caller and
    /// checked against the hash the contract keeps, so only one storage word moves per transaction.
    struct Progress {
        uint256 chunks; // chunk proofs checked so far, in chunk order
        // per slot (the n clients, then the aggregate), log2(P) words: the Merkle frontier of its
        // chunk commitments so far, word l the last left node of level l (ChunkMerkle.append)
        bytes32[] frontier;
        uint256 selectedMask; // the mask every chunk proof checked its sum under
        uint256 absentMask; // the slots every chunk proof saw as absent (tag 0)
        uint256[] gram; // the running sum of the partial Gram matrices (upper triangle, in the field)
    }

    struct ChunkProof {
        bytes proof;
        uint256[] instances;
    }

    /// @notice `stager`'s session `session` checked chunk proofs up to `chunks`.
    event ChunksStaged(address indexed stager, bytes32 indexed session, uint256 chunks, bytes32 progressHash);
    /// @notice All CHUNKS chunk proofs over `commitmentsHash` (keccak256 of the round's 64(n + 1)
    /// commitment bytes) checked under `selectedMask`: a combine proof can now close the round.
    event RoundStaged(bytes32 indexed commitmentsHash, uint256 selectedMask);

    error ChunkedRoundVerifier__WrongChunkCircuit(bytes32 vkaDigest);
    error ChunkedRoundVerifier__WrongProgress(bytes32 recorded, bytes32 given);
    error ChunkedRoundVerifier__TooManyChunks(uint256 chunks);
    error ChunkedRoundVerifier__ProgressShape();
    error ChunkedRoundVerifier__ChunkMismatch(uint256 chunk);
    error ChunkedRoundVerifier__ChunkRejected(uint256 chunk);
    error ChunkedRoundVerifier__NotStaged(bytes32 commitmentsHash, uint256 selectedMask);

    /// @notice Number of chunks a round of this verifier has.
    function CHUNKS() external view returns (uint256);

    /// @notice keccak256 of the chunk circuit's VKA (vkaDigest() is the combine circuit's).
    function chunkVkaDigest() external view returns (bytes32);

    /// @notice The hash the contract keeps of `stager`'s session `session` (zero: not started).
    function progressHash(address stager, bytes32 session) external view returns (bytes32);

    /// @notice Whether all chunk proofs over `commitmentsHash` under `selectedMask` are staged.
    function staged(bytes32 commitmentsHash, uint256 selectedMask) external view returns (bool);

    /// @notice Checks the next chunk proofs of the caller's session `session` (the first ones of
    /// a fresh session when `progress.chunks` is 0) and returns the progress after them. Each must
    /// be valid for the pinned chunk circuit with check_error 0 and the session's mask and absent
    /// slots. After the last chunk the round is staged for `verifyRound`.
    function stageChunks(bytes32 session, Progress calldata progress, ChunkProof[] calldata proofs, bytes32[] calldata vka)
        external
        returns (Progress memory next);

    /// @notice One chunk proof, checked alone against the pinned chunk VKA with every check
    /// stageChunks makes (instance count, field, binary masks, check_error == 0, the proof
    /// accepted); its errors name it chunk 0. The proof's first 64(n + 1) bytes are the n slots'
    /// chunk commitments then the aggregate's: a dispute checks them against the signed roots.
    /// gramHash = keccak256(abi.encodePacked(instances[0:t])), t = n(n+1)/2.
    function checkChunk(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 selectedMask, uint256 absentMask, bytes32 gramHash);

    /// @notice The combine proof, checked alone (no staging): pinned combine VKA, instance count,
    /// field, binary masks, proof accepted. gramHash = keccak256(abi.encodePacked(instances[0:t]))
    /// (the summed Gram the proof took).
    function checkCombine(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (uint256 selectedMask, uint256 absentMask, uint256[] memory scores, bytes32 gramHash);
}
