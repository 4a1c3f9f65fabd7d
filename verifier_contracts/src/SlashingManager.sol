// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {MPSRollup} from "./MPSRollup.sol";
import {ISlashingManager} from "./interfaces/ISlashingManager.sol";
import {Signatures} from "./libraries/Signatures.sol";

/// @title SlashingManager
/// @notice Keeps each client's record in a task (epochs unflagged, flagged, absent) and slashes
/// only what is proven a violation: a client that signed two different update commitments for
/// one task and epoch (equivocation; the two EIP-712 signatures are the proof, anyone may report
/// them) loses SLASH_BPS of STAKE_AMOUNT, once per task and epoch, burnt so that nobody profits
/// from a slash. An honest client's signer signs one commitment per task and epoch, so no honest
/// client can be slashed, whatever the others do.
/// A flag (a raw Krum score far above the reference, see MPSRollup) and an absence cost the
/// client that epoch's reward and never its stake: Krum scores are no proof of malice (an honest
/// client with unusual data scores high, and up to f colluders can lower the reference score),
/// and the chain cannot tell who is at fault for an absence.
/// @dev Its external functions, events and errors are declared (and documented) in ISlashingManager.
abstract contract SlashingManager is MPSRollup, ISlashingManager {
    /// @dev One epoch's outcome for all clients at once, so that recording a round costs the
    /// same at any n; a client's record is counted from them. Up to 128 clients both masks share
    /// the first word (flagged in the low half, absent in the high half); beyond, the absent
    /// mask has its own.
    struct EpochOutcome {
        uint256 packed;
        uint256 absentMask;
    }

    uint256 public immutable SLASH_BPS;

    mapping(uint256 => mapping(uint256 => EpochOutcome)) internal _outcomes; // taskId => epoch
    mapping(uint256 => mapping(address => uint256)) private _slashes; // taskId => client => slashes
    // taskId => epoch => client => slashed for equivocating in that epoch
    mapping(uint256 => mapping(uint256 => mapping(address => bool))) private _equivocated;

    constructor(uint256 slashBps) {
        if (slashBps > 10_000) revert SlashingManager__BadPolicy();
        SLASH_BPS = slashBps;
    }

    function record(uint256 taskId, address client)
        external
        view
        returns (uint256 unflaggedEpochs, uint256 flaggedEpochs, uint256 slashes, uint256 absentEpochs)
    {
        slashes = _slashes[taskId][client];
        uint256 slot = _clientSlot[taskId][client];
        if (slot == 0) return (0, 0, slashes, 0);
        uint256 bit = 1 << (slot - 1);
        Task storage task = _tasks[taskId];
        for (uint256 epoch = 1; epoch <= task.epochsRun; ++epoch) {
            (uint256 flaggedMask, uint256 absentMask) = _outcome(task, taskId, epoch);
            if (absentMask & bit != 0) ++absentEpochs;
            else if (flaggedMask & bit != 0) ++flaggedEpochs;
            else ++unflaggedEpochs;
        }
    }

    function reportEquivocation(
        uint256 taskId,
        uint256 epoch,
        bytes calldata commitmentA,
        bytes calldata signatureA,
        bytes calldata commitmentB,
        bytes calldata signatureB
    ) external {
        Task storage task = _tasks[taskId];
        // While the task holds the stakes locked, a slash always lands.
        if (task.status != Status.Active && task.status != Status.Evaluating) {
            revert TaskEscrow__WrongStatus(taskId, task.status);
        }
        if (commitmentA.length != 64 || commitmentB.length != 64 || keccak256(commitmentA) == keccak256(commitmentB)) {
            revert SlashingManager__NotEquivocation();
        }
        if (epoch == 0 || epoch > task.params.maxEpochs) revert SlashingManager__NotEquivocation();
        address client = Signatures.signerOf(updateDigest(taskId, epoch, commitmentA), signatureA);
        if (
            client == address(0) || _clientSlot[taskId][client] == 0
                || Signatures.signerOf(updateDigest(taskId, epoch, commitmentB), signatureB) != client
        ) revert SlashingManager__NotEquivocation();
        if (_equivocated[taskId][epoch][client]) revert SlashingManager__AlreadySlashed(client, epoch);
        _equivocated[taskId][epoch][client] = true;
        _slashes[taskId][client] += 1;
        uint256 taken = REGISTRY.slash(client, (REGISTRY.STAKE_AMOUNT() * SLASH_BPS) / 10_000);
        emit ClientSlashed(taskId, epoch, client, taken);
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask, uint256 absentMask)
        internal
        virtual
        override
    {
        EpochOutcome storage outcome = _outcomes[taskId][epoch];
        if (task.clients.length <= 128) {
            if (flaggedMask | absentMask != 0) outcome.packed = flaggedMask | (absentMask << 128);
        } else {
            if (flaggedMask != 0) outcome.packed = flaggedMask;
            if (absentMask != 0) outcome.absentMask = absentMask;
        }
        for (uint256 i = 0; i < task.clients.length; ++i) {
            if ((absentMask >> i) & 1 == 1) emit ClientAbsent(taskId, epoch, task.clients[i]);
            else if ((flaggedMask >> i) & 1 == 1) emit ClientFlagged(taskId, epoch, task.clients[i]);
        }
    }

    /// @dev Each client's epochs neither flagged nor absent (what it is paid for), and their sum.
    function _unflaggedEpochs(Task storage task, uint256 taskId)
        internal
        view
        returns (uint256[] memory counts, uint256 total)
    {
        uint256 n = task.clients.length;
        counts = new uint256[](n);
        for (uint256 epoch = 1; epoch <= task.epochsRun; ++epoch) {
            (uint256 flaggedMask, uint256 absentMask) = _outcome(task, taskId, epoch);
            uint256 unpaid = flaggedMask | absentMask;
            for (uint256 i = 0; i < n; ++i) {
                if ((unpaid >> i) & 1 == 0) {
                    ++counts[i];
                    ++total;
                }
            }
        }
    }

    function _outcome(Task storage task, uint256 taskId, uint256 epoch)
        private
        view
        returns (uint256 flaggedMask, uint256 absentMask)
    {
        EpochOutcome storage outcome = _outcomes[taskId][epoch];
        if (task.clients.length <= 128) return (uint128(outcome.packed), outcome.packed >> 128);
        return (outcome.packed, outcome.absentMask);
    }
}
