// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {MPSRollup} from "./MPSRollup.sol";
import {ISlashingManager} from "./ISlashingManager.sol";

/// @title SlashingManager
/// @notice Applies the slashing policy to the clients a proven round flags (left out by
/// Multi-Krum as an outlier; see MPSRollup). Krum scores are not proof of malice (an honest
/// client with unusual data scores badly), so one flag costs nothing: a client is slashed
/// SLASH_BPS of STAKE_AMOUNT only when flagged in FLAG_THRESHOLD of its last FLAG_WINDOW epochs
/// of a task, and its window then starts afresh. Each epoch is processed once, so no client is
/// slashed twice for one epoch. Flagged and absent epochs earn no reward; an absence is never
/// slashed (the chain cannot tell who is at fault for it) and leaves the window as it was.
/// @dev Its external functions, events and errors are declared (and documented) in ISlashingManager.
abstract contract SlashingManager is MPSRollup, ISlashingManager {
    struct ClientRecord {
        uint64 window; // bit 0: the last epoch; 1 = flagged (one storage slot in all)
        uint32 unflaggedEpochs;
        uint32 flaggedEpochs;
        uint32 slashes;
        uint32 absentEpochs;
    }

    uint256 public immutable FLAG_THRESHOLD;
    uint256 public immutable FLAG_WINDOW;
    uint256 public immutable SLASH_BPS;

    mapping(uint256 => mapping(address => ClientRecord)) internal _records;

    constructor(uint256 flagThreshold, uint256 flagWindow, uint256 slashBps) {
        if (flagWindow == 0 || flagWindow > 64 || flagThreshold == 0 || flagThreshold > flagWindow || slashBps > 10_000) {
            revert SlashingManager__BadPolicy();
        }
        FLAG_THRESHOLD = flagThreshold;
        FLAG_WINDOW = flagWindow;
        SLASH_BPS = slashBps;
    }

    function record(uint256 taskId, address client)
        external
        view
        returns (uint256 window, uint256 unflaggedEpochs, uint256 flaggedEpochs, uint256 slashes, uint256 absentEpochs)
    {
        ClientRecord storage r = _records[taskId][client];
        return (r.window, r.unflaggedEpochs, r.flaggedEpochs, r.slashes, r.absentEpochs);
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask, uint256 absentMask)
        internal
        virtual
        override
    {
        uint256 windowMask = (1 << FLAG_WINDOW) - 1;
        for (uint256 i = 0; i < task.clients.length; ++i) {
            address client = task.clients[i];
            ClientRecord storage r = _records[taskId][client];
            if ((absentMask >> i) & 1 == 1) {
                r.absentEpochs += 1;
                emit ClientAbsent(taskId, epoch, client);
                continue;
            }
            uint256 flagged = (flaggedMask >> i) & 1;
            r.window = uint64(((uint256(r.window) << 1) | flagged) & windowMask);
            if (flagged == 0) {
                r.unflaggedEpochs += 1;
                continue;
            }
            r.flaggedEpochs += 1;
            emit ClientFlagged(taskId, epoch, client);
            if (_popcount(r.window) >= FLAG_THRESHOLD) {
                r.window = 0;
                r.slashes += 1;
                uint256 taken = REGISTRY.slash(client, (REGISTRY.STAKE_AMOUNT() * SLASH_BPS) / 10_000);
                emit ClientSlashed(taskId, epoch, client, taken);
            }
        }
    }

    function _popcount(uint256 x) private pure returns (uint256 count) {
        for (; x != 0; x &= x - 1) ++count;
    }
}
