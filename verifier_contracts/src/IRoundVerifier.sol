// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title The proven Multi-Krum round check (RoundVerifier.sol)
interface IRoundVerifier {
    /// @notice Number of updates the pinned round circuit takes.
    function clients() external view returns (uint256);

    /// @notice Reverts unless `proof` is valid for the pinned circuit over exactly `commitments`
    /// (n updates then the aggregate, 64 bytes each); returns the selection bitmask.
    function verifyRound(
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata commitments
    ) external returns (uint256 selectedMask);
}
