// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title Signatures
/// @notice The 65-byte (r, s, v) signatures of the clients' update commitments, as MPSRollup
/// checks a round's slots and SlashingManager checks an equivocation report: who signed, and
/// the all-zero placeholder of an absent slot.
/// @dev Internal functions only: they are inlined into the caller, no library to deploy or link.
library Signatures {
    /// @dev Who signed `digest` with the 65-byte (r, s, v) `signature`, or address(0). tryRecover,
    /// not recover: a bad signature is the caller's error to raise, not OZ's. It rejects high-s
    /// (malleable) signatures; a v other than 27 or 28 recovers no address.
    function signerOf(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        (address recovered, ECDSA.RecoverError error,) =
            ECDSA.tryRecover(digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64]));
        return error == ECDSA.RecoverError.NoError ? recovered : address(0);
    }

    /// @dev Whether the 65-byte (r, s, v) `signature` of `digest` is `signer`'s.
    function signedBy(bytes32 digest, bytes calldata signature, address signer) internal pure returns (bool) {
        address recovered = signerOf(digest, signature);
        return recovered != address(0) && recovered == signer;
    }

    /// @dev Whether the 65-byte `signature` is all zeros (an absent slot's placeholder).
    function isZero(bytes calldata signature) internal pure returns (bool) {
        return bytes32(signature[0:32]) == 0 && bytes32(signature[32:64]) == 0 && signature[64] == 0;
    }
}
