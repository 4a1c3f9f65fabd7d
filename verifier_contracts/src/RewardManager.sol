// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {SlashingManager} from "./SlashingManager.sol";

/// @title RewardManager
/// @notice Completes a task (the requester accepts, or anyone once max epochs have run):
/// charges the fees of the epochs run from escrow and credits each client in proportion to
/// its unflagged epochs; the rest of the escrow, and all fees if no client earned any, go back
/// to the requester. Everyone withdraws their credit (pull payments).
abstract contract RewardManager is SlashingManager {
    mapping(address => uint256) private _credits;
    uint256 private _creditsHeld;
    bool private _entered;

    event TaskCompleted(uint256 indexed taskId, uint256 epochsRun, uint256 rewarded, uint256 refunded);
    event CreditWithdrawn(address indexed account, uint256 amount);

    error RewardManager__NotYetCompletable(uint256 epochsRun, uint256 maxEpochs);
    error RewardManager__NothingToWithdraw();
    error RewardManager__TransferFailed();
    error RewardManager__Reentrant();

    function complete(uint256 taskId) external {
        Task storage task = _requireStatus(taskId, Status.Active);
        if (msg.sender != task.requester && task.epochsRun < task.params.maxEpochs) {
            revert RewardManager__NotYetCompletable(task.epochsRun, task.params.maxEpochs);
        }
        task.status = Status.Completed;
        uint256 escrow = task.escrow;
        task.escrow = 0;
        _escrowHeld -= escrow;
        uint256 fees = uint256(task.epochsRun) * task.params.feePerEpoch;
        uint256 earned;
        for (uint256 i = 0; i < task.clients.length; ++i) {
            earned += _records[taskId][task.clients[i]].unflaggedEpochs;
        }
        uint256 rewarded;
        if (earned != 0) {
            for (uint256 i = 0; i < task.clients.length; ++i) {
                uint256 share = (fees * _records[taskId][task.clients[i]].unflaggedEpochs) / earned;
                rewarded += share;
                _credit(task.clients[i], share);
            }
        }
        _credit(task.requester, escrow - rewarded);
        _unlockAll(task);
        emit TaskCompleted(taskId, task.epochsRun, rewarded, escrow - rewarded);
    }

    function withdrawCredit() external {
        if (_entered) revert RewardManager__Reentrant();
        _entered = true;
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert RewardManager__NothingToWithdraw();
        _credits[msg.sender] = 0;
        _creditsHeld -= amount;
        emit CreditWithdrawn(msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert RewardManager__TransferFailed();
        _entered = false;
    }

    function creditOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    function creditsHeld() external view returns (uint256) {
        return _creditsHeld;
    }

    function _credit(address account, uint256 amount) internal override {
        if (amount == 0) return;
        _credits[account] += amount;
        _creditsHeld += amount;
    }
}
