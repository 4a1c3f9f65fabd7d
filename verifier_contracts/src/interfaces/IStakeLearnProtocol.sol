// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IStakingRegistry} from "./IStakingRegistry.sol";
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

    /// @notice The constructor's one argument: the deployment's policy, fixed for good.
    struct ProtocolConfig {
        uint256 baseFee; // BASE_FEE: wei a requester pays per task on top of the escrow, kept
        IStakingRegistry registry; // REGISTRY: holds the stakes, names this contract its protocol
        uint256 slashBps; // SLASH_BPS: the share of STAKE_AMOUNT an equivocation costs (<= 10000)
        uint256 outlierBps; // OUTLIER_BPS: a flag is a score over this / 10000 x the reference (>= 10000)
        Periods periods; // every state's deadline
        uint256 workBps; // WORK_BPS: the share of the fees owed when the target is missed (<= 10000)
    }

    error StakeLearnProtocol__BadPeriods();
}
