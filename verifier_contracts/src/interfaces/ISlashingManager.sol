// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Clients' records, and the slash for a proven violation (SlashingManager.sol)
interface ISlashingManager {
    event ClientFlagged(uint256 indexed taskId, uint256 indexed epoch, address indexed client);
    event ClientAbsent(uint256 indexed taskId, uint256 indexed epoch, address indexed client);
    /// @notice The client signed two different commitments for `epoch` and lost `taken` wei of stake.
    event ClientSlashed(uint256 indexed taskId, uint256 indexed epoch, address indexed client, uint256 taken);

    error SlashingManager__BadPolicy();
    error SlashingManager__NotEquivocation();
    error SlashingManager__AlreadySlashed(address client, uint256 epoch);

    /// @notice A slash takes SLASH_BPS / 10000 of STAKE_AMOUNT.
    function SLASH_BPS() external view returns (uint256);

    /// @notice A client's record in a task: its epochs neither flagged nor absent (what it is paid
    /// for), flagged, its slashes, and its epochs absent.
    function record(uint256 taskId, address client)
        external
        view
        returns (uint256 unflaggedEpochs, uint256 flaggedEpochs, uint256 slashes, uint256 absentEpochs);

    /// @notice Anyone proves that an enrolled client of an active or evaluating task signed two
    /// different commitments for one epoch (EIP-712 `UpdateCommitment`, as MPSRollup checks
    /// them): the client is slashed SLASH_BPS of STAKE_AMOUNT, once per task and epoch. Reverts
    /// `SlashingManager__NotEquivocation` unless both signatures recover to the same enrolled
    /// client over two different 64-byte commitments of an epoch in 1..maxEpochs.
    function reportEquivocation(
        uint256 taskId,
        uint256 epoch,
        bytes calldata commitmentA,
        bytes calldata signatureA,
        bytes calldata commitmentB,
        bytes calldata signatureB
    ) external;
}
