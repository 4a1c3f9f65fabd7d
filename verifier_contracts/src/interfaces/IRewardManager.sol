// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title The end of a task: proven accuracy, settlement, credits (RewardManager.sol)
interface IRewardManager {
    event EvaluationStarted(uint256 indexed taskId, uint256 epochsRun, uint256 deadline);
    event EvaluationSetRevealed(uint256 indexed taskId, bytes32 salt, bytes setCommitments, uint256 proofDeadline);
    event EvaluationSetUnprovable(uint256 indexed taskId);
    /// @notice A void accuracy claim ran into the proof window: it starts again, until `proofDeadline`.
    event ProofWindowReopened(uint256 indexed taskId, uint256 proofDeadline);
    event AccuracyProven(uint256 indexed taskId, uint256 correct, uint256 samples, bool targetReached);
    event EvaluationForfeited(uint256 indexed taskId);
    event TaskCompleted(uint256 indexed taskId, uint256 epochsRun, uint256 rewarded, uint256 refunded, uint256 burnt);
    event CreditWithdrawn(address indexed account, uint256 amount);

    error RewardManager__BadPolicy();
    error RewardManager__NoEpochRun();
    error RewardManager__RoundPeriodNotOver(uint256 until);
    error RewardManager__WrongModel(bytes32 recorded, bytes32 proven);
    error RewardManager__WrongEvaluationSet(bytes32 committed, bytes32 proven);
    error RewardManager__DeadlinePassed(uint256 deadline);
    error RewardManager__AlreadyRevealed();
    error RewardManager__DeadlineNotPassed(uint256 deadline);
    error RewardManager__NothingToWithdraw();
    error RewardManager__TransferFailed();
    error RewardManager__AccuracyClaimPending(uint256 taskId);
    error RewardManager__NotRevealed();
    error RewardManager__BadCount(uint256 correct);

    /// @notice Seconds an epoch may run without a round before anyone may end training.
    function ROUND_PERIOD() external view returns (uint256);

    /// @notice Seconds the requester has to reveal its evaluation set once training ends.
    function EVALUATION_PERIOD() external view returns (uint256);

    /// @notice Seconds anyone has to prove the accuracy once the set is revealed.
    function PROOF_PERIOD() external view returns (uint256);

    /// @notice The share of the fees run that the clients get on a missed target, in bps.
    function WORK_BPS() external view returns (uint256);

    /// @notice Ends training: the requester at any time after at least one epoch; anyone once
    /// ROUND_PERIOD has passed since the current epoch started without a round (a task with no
    /// epoch run is then cancelled: escrow refunded, stakes unlocked).
    function endTraining(uint256 taskId) external;

    /// @notice The requester reveals its salt and its evaluation set's commitments (each accuracy
    /// proof's x then labels commitment, 64 bytes each, in proof order), which must hash to the
    /// task's `evaluationSet`; it publishes the set's values off chain, to the provers. The proof
    /// window (PROOF_PERIOD) starts now.
    function revealEvaluationSet(uint256 taskId, bytes32 salt, bytes calldata setCommitments) external;

    /// @notice Settles the task on a proof of how many evaluation samples the final model gets right,
    /// over the task's evaluation set commitments; a proof that finds the set out of range pays the
    /// clients the full fee (EvaluationSetUnprovable).
    /// @param salt the requester's salt of its evaluation set commitment
    /// @param modelCommitment the final global model's commitment (64 bytes)
    function submitAccuracy(
        uint256 taskId,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external;

    /// @notice After the deadline without an accuracy proof (the proof deadline once the set is
    /// revealed, the reveal deadline before): a missed target if the requester revealed its set,
    /// otherwise the requester forfeits the escrow.
    function settle(uint256 taskId) external;

    /// @notice The commitment a requester gives at task creation for a set whose commitments hash
    /// to `setHash` (keccak256 of its accuracy proofs' set commitments, 64 bytes each, in proof order).
    function evaluationCommitment(bytes32 salt, bytes32 setHash) external pure returns (bytes32);

    /// @notice The reveal deadline, then (once revealed) the proof deadline of an Evaluating task.
    function evaluationDeadline(uint256 taskId) external view returns (uint256);

    /// @notice Pays the caller its whole credit (pull payments).
    function withdrawCredit() external;

    function creditOf(address account) external view returns (uint256);

    function creditsHeld() external view returns (uint256);

    /// @notice Fees burnt on missed targets: locked here for good, so no party profits from a miss.
    function burntHeld() external view returns (uint256);

    /// @notice The checks `submitAccuracy` makes of accuracy proof(s), without settling: the count
    /// and range flag they prove on the task's final model and committed set, whatever the time (a
    /// claim made in the proof window is answered after it). OptimisticRounds answers accuracy
    /// disputes through it.
    function checkAccuracy(
        uint256 taskId,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, uint256 rangeError);

    /// @notice Reverts unless an accuracy claim of `correct` may be made now: the task evaluating,
    /// its set revealed, its proof window open, the count at most the set's size.
    function checkAccuracyClaim(uint256 taskId, uint256 correct) external view;

    /// @notice Settles on a final accuracy claim as `submitAccuracy` on a proof. Only OptimisticRounds.
    function settleOnClaimedAccuracy(uint256 taskId, uint256 correct, bool rangeError) external;

    /// @notice A void accuracy claim's proof window starts again in full. Only OptimisticRounds.
    function reopenAccuracy(uint256 taskId) external;
}
