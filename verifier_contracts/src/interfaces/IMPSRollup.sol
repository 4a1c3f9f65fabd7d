// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC5267} from "@openzeppelin/contracts/interfaces/IERC5267.sol";
import {IOptimisticRounds} from "./IOptimisticRounds.sol";
import {IRoundVerifier} from "./IRoundVerifier.sol";

/// @title The Model Parameters Sharing chain: one proven, signed batch per epoch (MPSRollup.sol)
/// @notice Clients sign their update commitments with EIP-712, domain (name "StakeLearn",
/// version "1", chainId, this contract), type UpdateCommitment(uint256 taskId,uint256 epoch,bytes commitment);
/// `eip712Domain()` (EIP-5267) returns that domain.
interface IMPSRollup is IERC5267 {
    struct Round {
        uint256 taskId;
        uint256 epoch;
        bytes32 previousModel; // keccak256 of the global model commitment the round starts from
        bytes commitments; // n update commitments then the aggregate's, 64 bytes each
        bytes signatures; // n signatures, 65 bytes each (r, s, v), in enrollment order; zero: absent
        bytes proof;
        uint256[] instances;
        bytes32[] vka;
    }

    event RoundSubmitted(
        uint256 indexed taskId,
        uint256 indexed epoch,
        bytes32 stateRoot,
        bytes32 globalModel,
        uint256 selectedMask,
        uint256 flaggedMask,
        uint256 absentMask,
        bytes commitments,
        bytes signatures
    );
    /// @notice An optimistic task's round was voided: `epoch` starts again (new commit window).
    event EpochReopened(uint256 indexed taskId, uint256 epoch);
    event CommitmentPosted(uint256 indexed taskId, uint256 indexed epoch, address indexed client, bytes commitment);

    error MPSRollup__WrongEpoch(uint256 expected, uint256 given);
    error MPSRollup__WrongPreviousModel(bytes32 recorded, bytes32 given);
    error MPSRollup__BatchSize();
    error MPSRollup__BadSignature(uint256 client);
    error MPSRollup__BadOutlierRatio();
    error MPSRollup__NotEnrolled(address caller);
    error MPSRollup__CommitWindowClosed(uint256 closedAt);
    error MPSRollup__CommitWindowOpen(uint256 until);
    error MPSRollup__AlreadyPosted(uint256 client);
    error MPSRollup__PostedCommitmentMissing(uint256 client);
    error MPSRollup__NotAbsentCommitment(uint256 client);
    error MPSRollup__TooManyAbsent(uint256 absent, uint256 allowed);
    error MPSRollup__AbsenceMismatch(uint256 declared, uint256 proven);
    error MPSRollup__OptimisticTask(uint256 taskId);
    error MPSRollup__NotOptimisticRounds(address caller);
    error MPSRollup__RoundPending(uint256 taskId);

    /// @notice keccak256("UpdateCommitment(uint256 taskId,uint256 epoch,bytes commitment)").
    function UPDATE_TYPEHASH() external view returns (bytes32);

    /// @notice A present client is flagged (its epoch unpaid, never a slash) when its raw Krum
    /// score exceeds OUTLIER_BPS / 10000 times the reference score, the (p - f)-th smallest of the
    /// p present clients' scores.
    function OUTLIER_BPS() external view returns (uint256);

    /// @notice Seconds from an epoch's start during which a round may not leave out any client.
    function COMMIT_PERIOD() external view returns (uint256);

    /// @notice The EIP-712 domain separator the clients sign under.
    function domainSeparator() external view returns (bytes32);

    /// @notice The digest a client signs for its commitment (EIP-712).
    function updateDigest(uint256 taskId, uint256 epoch, bytes calldata commitment) external view returns (bytes32);

    /// @notice When the current epoch's commit window closes: after it, a round may leave out
    /// the clients that neither signed nor posted a commitment.
    function commitDeadline(uint256 taskId) external view returns (uint256);

    /// @notice An enrolled client puts its commitment for `epoch`, which must be the open epoch,
    /// on chain itself during the commit window: the round must then include it (no one can pass
    /// it off as absent). Naming the epoch keeps a post that is mined after the round from
    /// becoming the next epoch's commitment.
    function postCommitment(uint256 taskId, uint256 epoch, bytes calldata commitment) external;

    /// @notice keccak256 of the commitment client `slot` posted for `epoch` (zero: none).
    function postedCommitment(uint256 taskId, uint256 epoch, uint256 slot) external view returns (bytes32);

    /// @notice How many absent clients a round of a task shaped (n, f, m) may leave out:
    /// min(f, n - m - f, n - 2f - 3), so that at least m + f and 2f + 3 clients are present.
    function allowedAbsent(uint256 n, uint256 f, uint256 m) external pure returns (uint256);

    /// @notice Submits one epoch of a task: exactly once, in order, from the recorded model, with
    /// a proof the task's RoundVerifier accepts over exactly the signed (or posted) commitments.
    function submitRound(Round calldata round) external;

    /// @notice An optimistic task's claim, checked as `submitRound` checks a round bar its proof
    /// (OptimisticRounds calls it when a round is proposed): the slots' signatures, posted
    /// commitments and absences. Returns the absent slots, the clients `scores` flag, and the
    /// global model and state root recording it would write.
    function checkClaim(
        uint256 taskId,
        uint256 epoch,
        bytes32 previousModel,
        bytes calldata commitments,
        bytes calldata signatures,
        uint256[] calldata scores
    ) external view returns (uint256 absentMask, uint256 flaggedMask, bytes32 globalModel, bytes32 stateRoot);

    /// @notice Records a final optimistic round as `submitRound` records a proven one; its
    /// RoundSubmitted event leaves the batch out (it is in RoundProposed). Only the deployment's
    /// OptimisticRounds may call it.
    function recordClaim(uint256 taskId, IOptimisticRounds.Outcome calldata outcome) external;

    /// @notice What OptimisticRounds reads of a task: its verification (0 eager, 1 optimistic),
    /// round verifier, fee per epoch and n.
    function verificationOf(uint256 taskId)
        external
        view
        returns (uint256 verification, IRoundVerifier verifier, uint256 feePerEpoch, uint256 n);

    /// @notice A void round's epoch starts again; returns it. Only OptimisticRounds may call it.
    function reopenEpoch(uint256 taskId) external returns (uint256 epoch);
}
