// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IHalo2VerifierReusable} from "./interfaces/IHalo2VerifierReusable.sol";
import {IPinnedVerifier} from "./interfaces/IPinnedVerifier.sol";

/// @title PinnedVerifier
/// @notice The part RoundVerifier, ChunkedRoundVerifier and AccuracyVerifier share: ezkl's
/// reusable verifier accepts a proof for any registered VKA, and anyone can register one, so each
/// wrapper pins the digest of its own circuit's VKA and accepts only proofs the reusable verifier
/// checked against it. (ChunkedRoundVerifier pins a second circuit's digest beside it.)
/// @dev Its external functions are declared (and documented) in IPinnedVerifier.
abstract contract PinnedVerifier is IPinnedVerifier {
    /// @dev BN254 scalar field modulus: instances at or above it are not field elements.
    uint256 internal constant _FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    IHalo2VerifierReusable private immutable _verifier;
    bytes32 private immutable _vkaDigest;

    constructor(IHalo2VerifierReusable verifier_, bytes32 vkaDigest_) {
        _verifier = verifier_;
        _vkaDigest = vkaDigest_;
    }

    function verifier() external view returns (address) {
        return address(_verifier);
    }

    function vkaDigest() external view returns (bytes32) {
        return _vkaDigest;
    }

    /// @dev The digest of `vka` and whether it is the pinned circuit's.
    function _pinned(bytes32[] calldata vka) internal view returns (bool pinned, bytes32 digest) {
        return _pinnedTo(vka, _vkaDigest);
    }

    function _pinnedTo(bytes32[] calldata vka, bytes32 expected) internal pure returns (bool pinned, bytes32 digest) {
        digest = keccak256(abi.encodePacked(vka));
        pinned = digest == expected;
    }

    /// @dev Whether the reusable verifier accepts `proof` for the pinned circuit.
    function _accepted(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        internal
        returns (bool)
    {
        return _acceptedFor(proof, instances, vka, _vkaDigest);
    }

    /// @dev Whether the reusable verifier accepts `proof` for the circuit whose VKA digest is `expected`.
    function _acceptedFor(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka, bytes32 expected)
        internal
        returns (bool)
    {
        (bool called, bytes memory result) =
            address(_verifier).call(abi.encodeCall(IHalo2VerifierReusable.verifyProof, (proof, instances, vka)));
        if (!called || result.length < 64) return false;
        (bool success, bytes32 returnedDigest) = abi.decode(result, (bool, bytes32));
        return success && returnedDigest == expected;
    }
}
