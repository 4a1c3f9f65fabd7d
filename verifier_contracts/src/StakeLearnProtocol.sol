// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {StakingRegistry} from "./StakingRegistry.sol";
import {TaskEscrow} from "./TaskEscrow.sol";
import {MPSRollup} from "./MPSRollup.sol";
import {SlashingManager} from "./SlashingManager.sol";
import {RewardManager} from "./RewardManager.sol";

/// @title StakeLearnProtocol
/// @notice Task escrow, the MPS rollup, slashing and rewards in one deployment; stakes live in
/// the StakingRegistry, which names this contract as the only one allowed to lock and slash.
/// Ether held here always equals escrow + unpaid credits + base fees held + fees burnt.
contract StakeLearnProtocol is RewardManager {
    /// @notice Every state's deadline, in seconds: after each, anyone can move a task on.
    struct Periods {
        uint256 enrollment; // Open: then anyone may cancel
        uint256 commit; // an epoch's commit window: then a round may leave out absent clients
        uint256 round; // an epoch without a round: then anyone may end training
        uint256 evaluation; // Evaluating: the requester's reveal window
        uint256 proof; // after the reveal: the accuracy proof window
    }

    error StakeLearnProtocol__BadPeriods();

    constructor(
        uint256 baseFee,
        StakingRegistry registry,
        uint256 flagThreshold,
        uint256 flagWindow,
        uint256 slashBps,
        uint256 outlierBps,
        Periods memory periods,
        uint256 workBps
    )
        TaskEscrow(baseFee, registry, periods.enrollment)
        MPSRollup(outlierBps, periods.commit)
        SlashingManager(flagThreshold, flagWindow, slashBps)
        RewardManager(periods.round, periods.evaluation, periods.proof, workBps)
    {
        // A round must be able to land after the commit window, before anyone may end training.
        if (periods.round <= periods.commit) revert StakeLearnProtocol__BadPeriods();
    }
}
