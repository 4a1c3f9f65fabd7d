// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title The slashing policy applied to the clients a proven round flags (SlashingManager.sol)
interface ISlashingManager {
    event ClientFlagged(uint256 indexed taskId, uint256 indexed epoch, address indexed client);
    event ClientAbsent(uint256 indexed taskId, uint256 indexed epoch, address indexed client);
    event ClientSlashed(uint256 indexed taskId, uint256 indexed epoch, address indexed client, uint256 taken);

    error SlashingManager__BadPolicy();

    /// @notice A client is slashed when flagged in FLAG_THRESHOLD of its last FLAG_WINDOW epochs.
    function FLAG_THRESHOLD() external view returns (uint256);

    function FLAG_WINDOW() external view returns (uint256);

    /// @notice A slash takes SLASH_BPS / 10000 of STAKE_AMOUNT.
    function SLASH_BPS() external view returns (uint256);

    /// @notice A client's record in a task: `window` has bit 0 set when its last present epoch was
    /// flagged; then its epochs neither flagged nor absent, flagged, absent, and its slashes.
    function record(uint256 taskId, address client)
        external
        view
        returns (uint256 window, uint256 unflaggedEpochs, uint256 flaggedEpochs, uint256 slashes, uint256 absentEpochs);
}
