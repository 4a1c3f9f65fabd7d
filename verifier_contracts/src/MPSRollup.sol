// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {TaskEscrow} from "./TaskEscrow.sol";

/// @title MPSRollup
/// @notice The Model Parameters Sharing chain: one batch per (task, epoch) holding each
/// client's update commitment and its EIP-712 signature over (chainId, this contract, taskId,
/// epoch, commitment); a state root chained from the previous one; the global model
/// commitment of each epoch. Its state transition is the proven Krum round: a batch lands only
/// with a proof, checked by the task's RoundVerifier, over exactly the signed commitments.
/// The RoundSubmitted events carry everything needed to rebuild and re-check the history.
///
/// Flags: Multi-Krum always leaves n - m clients out, honest ones too when fewer attack, so
/// being left out is not enough: a client is flagged when it is left out and its proven Krum
/// score exceeds OUTLIER_BPS / 10000 times the largest selected score, or when its commitment
/// duplicates another's in the batch.
abstract contract MPSRollup is TaskEscrow {
    struct Round {
        uint256 taskId;
        uint256 epoch;
        bytes32 previousModel; // keccak256 of the global model commitment the round starts from
        bytes commitments; // n update commitments then the aggregate's, 64 bytes each
        bytes signatures; // n signatures, 65 bytes each (r, s, v), in enrollment order
        bytes proof;
        uint256[] instances;
        bytes32[] vka;
    }

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant UPDATE_TYPEHASH = keccak256("UpdateCommitment(uint256 taskId,uint256 epoch,bytes commitment)");
    uint256 public immutable OUTLIER_BPS;
    uint256 private constant _HALF_CURVE_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    event RoundSubmitted(
        uint256 indexed taskId,
        uint256 indexed epoch,
        bytes32 stateRoot,
        bytes32 globalModel,
        uint256 selectedMask,
        uint256 flaggedMask,
        bytes commitments,
        bytes signatures
    );

    error MPSRollup__WrongEpoch(uint256 expected, uint256 given);
    error MPSRollup__WrongPreviousModel(bytes32 recorded, bytes32 given);
    error MPSRollup__BatchSize();
    error MPSRollup__BadSignature(uint256 client);
    error MPSRollup__BadOutlierRatio();

    constructor(uint256 outlierBps) {
        if (outlierBps < 10_000 || outlierBps > type(uint32).max) revert MPSRollup__BadOutlierRatio();
        OUTLIER_BPS = outlierBps;
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, keccak256("StakeLearn"), keccak256("1"), block.chainid, address(this)));
    }

    /// @notice The digest client `i` signs for its commitment (EIP-712).
    function updateDigest(uint256 taskId, uint256 epoch, bytes calldata commitment) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(UPDATE_TYPEHASH, taskId, epoch, keccak256(commitment)));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice Submits one epoch of a task: exactly once, in order, from the recorded model.
    function submitRound(Round calldata round) external {
        Task storage task = _requireStatus(round.taskId, Status.Active);
        uint256 expected = uint256(task.epochsRun) + 1;
        if (round.epoch != expected || expected > task.params.maxEpochs) revert MPSRollup__WrongEpoch(expected, round.epoch);
        if (round.previousModel != task.globalModel) revert MPSRollup__WrongPreviousModel(task.globalModel, round.previousModel);
        uint256 n = task.clients.length;
        if (round.commitments.length != 64 * (n + 1) || round.signatures.length != 65 * n) revert MPSRollup__BatchSize();
        for (uint256 i = 0; i < n; ++i) {
            bytes32 digest = updateDigest(round.taskId, round.epoch, round.commitments[64 * i:64 * (i + 1)]);
            if (_recover(digest, round.signatures[65 * i:65 * (i + 1)]) != task.clients[i]) {
                revert MPSRollup__BadSignature(i);
            }
        }
        uint256 selectedMask = task.params.verifier.verifyRound(round.proof, round.instances, round.vka, round.commitments);
        uint256 flaggedMask = _outlierMask(round.instances, selectedMask, n) | _duplicateMask(round.commitments, n);

        bytes32 globalModel = keccak256(round.commitments[64 * n:]);
        bytes32 stateRoot = keccak256(
            abi.encode(
                task.stateRoot, round.taskId, round.epoch, keccak256(round.commitments), keccak256(round.signatures), flaggedMask, globalModel
            )
        );
        task.epochsRun = uint32(round.epoch);
        task.globalModel = globalModel;
        task.stateRoot = stateRoot;
        emit RoundSubmitted(
            round.taskId, round.epoch, stateRoot, globalModel, selectedMask, flaggedMask, round.commitments, round.signatures
        );
        _afterRound(task, round.taskId, round.epoch, flaggedMask);
    }

    /// @dev Clients left out whose score (instances[i], proven) is over OUTLIER_BPS / 10000 times
    /// the largest selected score. Proven scores are far below 2^200, so the products cannot overflow.
    function _outlierMask(uint256[] calldata scores, uint256 selectedMask, uint256 n) internal view returns (uint256 mask) {
        uint256 best;
        for (uint256 i = 0; i < n; ++i) {
            if ((selectedMask >> i) & 1 == 1 && scores[i] > best) best = scores[i];
        }
        for (uint256 i = 0; i < n; ++i) {
            if ((selectedMask >> i) & 1 == 0 && scores[i] * 10_000 > best * OUTLIER_BPS) mask |= 1 << i;
        }
    }

    /// @dev Clients whose commitment equals another client's in the same batch (a copied
    /// update): all members of such a group are flagged, since the chain cannot tell who copied.
    function _duplicateMask(bytes calldata commitments, uint256 n) internal pure returns (uint256 mask) {
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            hashes[i] = keccak256(commitments[64 * i:64 * (i + 1)]);
            for (uint256 j = 0; j < i; ++j) {
                if (hashes[i] == hashes[j]) mask |= (1 << i) | (1 << j);
            }
        }
    }

    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > _HALF_CURVE_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask) internal virtual;
}
