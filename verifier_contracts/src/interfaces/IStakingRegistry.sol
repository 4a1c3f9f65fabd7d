// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Stakes of the clients (StakingRegistry.sol)
/// @notice Clients stake STAKE_AMOUNT of ether to take part in tasks; the protocol contract locks,
/// unlocks and slashes them; a withdrawal waits for the unbonding period and for no lock.
interface IStakingRegistry {
    event ProtocolSet(address indexed protocol);
    event Staked(address indexed client, uint256 amount);
    event ToppedUp(address indexed client, uint256 amount);
    event WithdrawalRequested(address indexed client, uint256 availableAt);
    event Withdrawn(address indexed client, uint256 amount);
    event Locked(address indexed client, uint256 locks);
    event Unlocked(address indexed client, uint256 locks);
    event Slashed(address indexed client, uint256 taken, uint256 penalty);

    error StakingRegistry__Unauthorized(address caller);
    error StakingRegistry__ProtocolAlreadySet();
    error StakingRegistry__WrongAmount(uint256 sent, uint256 required);
    error StakingRegistry__AlreadyStaked();
    error StakingRegistry__NotStaked();
    error StakingRegistry__Unbonding();
    error StakingRegistry__NotUnbonding();
    error StakingRegistry__UnbondingNotOver(uint256 availableAt);
    error StakingRegistry__StakeLocked(uint256 locks);
    error StakingRegistry__NotLocked();
    error StakingRegistry__StakeBelowMinimum(uint256 stake, uint256 required);
    error StakingRegistry__NotSlashed();
    error StakingRegistry__TransferFailed();

    /// @notice The stake every client puts up, in wei.
    function STAKE_AMOUNT() external view returns (uint256);

    /// @notice Seconds between a withdrawal request and the withdrawal.
    function UNBONDING_PERIOD() external view returns (uint256);

    /// @notice Names the protocol contract allowed to lock, unlock and slash; once, by the deployer.
    function setProtocol(address protocol) external;

    /// @notice Stakes exactly STAKE_AMOUNT.
    function stake() external payable;

    /// @notice Brings a slashed stake back to STAKE_AMOUNT (send exactly what is missing), so
    /// that the client can enroll again.
    function topUp() external payable;

    /// @notice Starts the unbonding clock. Allowed while enrolled: the clock runs, but the
    /// withdrawal itself waits until every task the client is in has ended.
    function requestWithdrawal() external;

    /// @notice Pays the whole stake back once unbonding is over and no task locks it.
    function withdraw() external;

    /// @notice Locks a client's stake for a task it enrolls in (the protocol only). Requires the
    /// full STAKE_AMOUNT: a slashed client tops up before it enrolls again.
    function lock(address client) external;

    /// @notice Releases one lock of a client's stake (the protocol only).
    function unlock(address client) external;

    /// @notice Takes min(penalty, stake) (the protocol only); never reverts for lack of stake.
    function slash(address client, uint256 penalty) external returns (uint256 taken);

    function stakeOf(address client) external view returns (uint256);

    function locksOf(address client) external view returns (uint256);

    /// @notice When the client requested its withdrawal (zero: not unbonding).
    function unbondingSince(address client) external view returns (uint256);

    function totalStaked() external view returns (uint256);

    /// @notice Ether taken by slashes: locked here for good (a burn).
    function slashedTotal() external view returns (uint256);

    function protocol() external view returns (address);
}
