// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IStakingRegistry} from "./interfaces/IStakingRegistry.sol";

/// @title StakingRegistry
/// @notice Clients stake STAKE_AMOUNT of ether to take part in tasks. A withdrawal completes only
/// after an unbonding period and only while the client is enrolled in no active task, so nobody
/// escapes a slash that is still to come. Only the slasher (the protocol contract) can slash;
/// a slash takes min(penalty, stake) and never reverts for lack of stake. Slashed ether stays
/// locked here for good (a burn): nobody profits from a slash, so nobody gains by framing.
/// @dev Its external functions, events and errors are declared (and documented) in IStakingRegistry.
contract StakingRegistry is IStakingRegistry, ReentrancyGuard {
    struct Staker {
        uint256 stake;
        uint64 unbondingSince; // 0: not unbonding
        uint32 locks; // active tasks the client is enrolled in
    }

    uint256 public immutable STAKE_AMOUNT;
    uint256 public immutable UNBONDING_PERIOD;

    address private immutable _deployer;
    address private _protocol;
    mapping(address => Staker) private _stakers;
    uint256 private _totalStaked;
    uint256 private _slashedTotal;

    modifier onlyProtocol() {
        if (msg.sender != _protocol) revert StakingRegistry__Unauthorized(msg.sender);
        _;
    }

    constructor(uint256 stakeAmount, uint256 unbondingPeriod) {
        STAKE_AMOUNT = stakeAmount;
        UNBONDING_PERIOD = unbondingPeriod;
        _deployer = msg.sender;
    }

    function setProtocol(address protocol) external {
        if (msg.sender != _deployer) revert StakingRegistry__Unauthorized(msg.sender);
        if (_protocol != address(0)) revert StakingRegistry__ProtocolAlreadySet();
        _protocol = protocol;
        emit ProtocolSet(protocol);
    }

    function stake() external payable {
        if (msg.value != STAKE_AMOUNT) revert StakingRegistry__WrongAmount(msg.value, STAKE_AMOUNT);
        Staker storage staker = _stakers[msg.sender];
        if (staker.stake != 0) revert StakingRegistry__AlreadyStaked();
        staker.stake = msg.value;
        _totalStaked += msg.value;
        emit Staked(msg.sender, msg.value);
    }

    function topUp() external payable {
        Staker storage staker = _stakers[msg.sender];
        if (staker.stake == 0) revert StakingRegistry__NotStaked();
        if (staker.unbondingSince != 0) revert StakingRegistry__Unbonding();
        if (staker.stake >= STAKE_AMOUNT) revert StakingRegistry__NotSlashed();
        uint256 missing = STAKE_AMOUNT - staker.stake;
        if (msg.value != missing) revert StakingRegistry__WrongAmount(msg.value, missing);
        staker.stake = STAKE_AMOUNT;
        _totalStaked += msg.value;
        emit ToppedUp(msg.sender, msg.value);
    }

    function requestWithdrawal() external {
        Staker storage staker = _stakers[msg.sender];
        if (staker.stake == 0) revert StakingRegistry__NotStaked();
        if (staker.unbondingSince != 0) revert StakingRegistry__Unbonding();
        staker.unbondingSince = uint64(block.timestamp);
        emit WithdrawalRequested(msg.sender, block.timestamp + UNBONDING_PERIOD);
    }

    function withdraw() external nonReentrant {
        Staker storage staker = _stakers[msg.sender];
        if (staker.unbondingSince == 0) revert StakingRegistry__NotUnbonding();
        uint256 availableAt = staker.unbondingSince + UNBONDING_PERIOD;
        if (block.timestamp < availableAt) revert StakingRegistry__UnbondingNotOver(availableAt);
        if (staker.locks != 0) revert StakingRegistry__StakeLocked(staker.locks);
        uint256 amount = staker.stake;
        delete _stakers[msg.sender];
        _totalStaked -= amount;
        emit Withdrawn(msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert StakingRegistry__TransferFailed();
    }

    function lock(address client) external onlyProtocol {
        Staker storage staker = _stakers[client];
        if (staker.stake == 0) revert StakingRegistry__NotStaked();
        if (staker.stake < STAKE_AMOUNT) revert StakingRegistry__StakeBelowMinimum(staker.stake, STAKE_AMOUNT);
        if (staker.unbondingSince != 0) revert StakingRegistry__Unbonding();
        staker.locks += 1;
        emit Locked(client, staker.locks);
    }

    function unlock(address client) external onlyProtocol {
        Staker storage staker = _stakers[client];
        if (staker.locks == 0) revert StakingRegistry__NotLocked();
        staker.locks -= 1;
        emit Unlocked(client, staker.locks);
    }

    function slash(address client, uint256 penalty) external onlyProtocol returns (uint256 taken) {
        Staker storage staker = _stakers[client];
        taken = penalty < staker.stake ? penalty : staker.stake;
        staker.stake -= taken;
        _totalStaked -= taken;
        _slashedTotal += taken;
        emit Slashed(client, taken, penalty);
    }

    function stakeOf(address client) external view returns (uint256) {
        return _stakers[client].stake;
    }

    function locksOf(address client) external view returns (uint256) {
        return _stakers[client].locks;
    }

    function unbondingSince(address client) external view returns (uint256) {
        return _stakers[client].unbondingSince;
    }

    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    function slashedTotal() external view returns (uint256) {
        return _slashedTotal;
    }

    function protocol() external view returns (address) {
        return _protocol;
    }
}
