// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ITaskEscrow} from "./ITaskEscrow.sol";
import {IMPSRollup} from "./IMPSRollup.sol";
import {ISlashingManager} from "./ISlashingManager.sol";
import {IRewardManager} from "./IRewardManager.sol";

/// @title The deployed protocol (StakeLearnProtocol.sol): every function, event and error of
/// its parts in one interface.
interface IStakeLearnProtocol is ITaskEscrow, IMPSRollup, ISlashingManager, IRewardManager {
    /// @notice Every state's deadline, in seconds: after each, anyone can move a task on.
    struct Periods {
        uint256 enrollment; // Open: then anyone may cancel
        uint256 commit; // an epoch's commit window: then a round may leave out absent clients
        uint256 round; // an epoch without a round: then anyone may end training
        uint256 evaluation; // Evaluating: the requester's reveal window
        uint256 proof; // after the reveal: the accuracy proof window
    }

    error StakeLearnProtocol__BadPeriods();
}
