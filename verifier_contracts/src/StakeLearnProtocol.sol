// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IStakeLearnProtocol} from "./interfaces/IStakeLearnProtocol.sol";
import {TaskEscrow} from "./TaskEscrow.sol";
import {MPSRollup} from "./MPSRollup.sol";
import {SlashingManager} from "./SlashingManager.sol";
import {RewardManager} from "./RewardManager.sol";

/// @title StakeLearnProtocol
/// @notice Task escrow, the MPS rollup, slashing and rewards in one deployment; stakes live in
/// the StakingRegistry, which names this contract as the only one allowed to lock and slash.
/// Ether held here always equals escrow + unpaid credits + base fees held + fees burnt.
/// @dev IStakeLearnProtocol declares all its functions, events and errors (OpenZeppelin's errors aside).
contract StakeLearnProtocol is RewardManager, IStakeLearnProtocol {
    constructor(ProtocolConfig memory config)
        TaskEscrow(config.baseFee, config.registry, config.periods.enrollment)
        MPSRollup(config.outlierBps, config.periods.commit)
        SlashingManager(config.slashBps)
        RewardManager(config.periods.round, config.periods.evaluation, config.periods.proof, config.workBps)
    {
        // A round must be able to land after the commit window, before anyone may end training.
        if (config.periods.round <= config.periods.commit) revert StakeLearnProtocol__BadPeriods();
    }
}
