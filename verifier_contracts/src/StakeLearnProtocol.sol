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
/// Ether held here always equals escrow + unpaid credits + base fees held.
contract StakeLearnProtocol is RewardManager {
    constructor(
        uint256 baseFee,
        StakingRegistry registry,
        uint256 flagThreshold,
        uint256 flagWindow,
        uint256 slashBps,
        uint256 outlierBps,
        uint256 evaluationPeriod,
        uint256 workBps
    )
        TaskEscrow(baseFee, registry)
        MPSRollup(outlierBps)
        SlashingManager(flagThreshold, flagWindow, slashBps)
        RewardManager(evaluationPeriod, workBps)
    {}
}
