// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";

/// @title RoundShape
/// @notice What RoundVerifier and ChunkedRoundVerifier share: the round shape (n, f, m), the
/// aggregation rule and the absent slot's commitment they pin, and reading the proven selection
/// and absent flags.
abstract contract RoundShape is IRoundVerifier {
    uint256 internal immutable _clients;
    uint256 private immutable _byzantine;
    uint256 private immutable _selected;
    uint8 private immutable _aggregation;
    bytes32 private immutable _absentCommitment;

    constructor(uint256 clients_, uint256 byzantine_, uint256 selected_, uint8 aggregation_, bytes32 absentCommitment_) {
        _clients = clients_;
        _byzantine = byzantine_;
        _selected = selected_;
        _aggregation = aggregation_;
        _absentCommitment = absentCommitment_;
    }

    function aggregation() external view returns (uint8) {
        return _aggregation;
    }

    function clients() external view returns (uint256) {
        return _clients;
    }

    function byzantine() external view returns (uint256) {
        return _byzantine;
    }

    function selected() external view returns (uint256) {
        return _selected;
    }

    function absentCommitment() external view returns (bytes32) {
        return _absentCommitment;
    }

    /// @dev The n mask bits at `maskAt` and the n absent flags at `absentAt` of `instances`, as
    /// bitmasks; reverts unless each is 0 or 1.
    function _bitmasks(uint256[] calldata instances, uint256 maskAt, uint256 absentAt)
        internal
        view
        returns (uint256 selectedMask, uint256 absentMask)
    {
        uint256 n = _clients;
        for (uint256 i = 0; i < n; ++i) {
            uint256 bit = instances[maskAt + i];
            uint256 gone = instances[absentAt + i];
            if (bit > 1) revert RoundVerifier__MaskNotBinary(i);
            if (gone > 1) revert RoundVerifier__MaskNotBinary(n + i);
            selectedMask |= bit << i;
            absentMask |= gone << i;
        }
    }
}
