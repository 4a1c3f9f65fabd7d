// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {SlashingManager} from "./SlashingManager.sol";
import {IRewardManager} from "./interfaces/IRewardManager.sol";

/// @title RewardManager
/// @notice Pays the clients only on a proven accuracy. At creation the requester commits to a
/// salted hash of its evaluation set's KZG commitments under the accuracy circuit (the set is a
/// committed input of the accuracy proofs, never public). Training ends after the last epoch,
/// when the requester ends it early, or when anyone ends it because no round landed for
/// ROUND_PERIOD (an absent aggregator; with no epoch run the task is cancelled). Then, each step
/// with its own deadline:
/// - within EVALUATION_PERIOD the requester reveals the salt and the set's commitments on chain
///   (`revealEvaluationSet`, checked against its commitment) and publishes the set's values off
///   chain, to whoever proves;
/// - within PROOF_PERIOD of the reveal, anyone submits an accuracy proof over exactly the
///   task's final model commitment and the revealed set commitments. A proof that finds the set
///   out of range (an x value beyond the circuit's input range, a label no class) settles with
///   the full fee to the clients: the requester cannot buy a missed target with a bad set.
///   Otherwise, if correct / size reaches the desired accuracy, the fees of the epochs run are
///   paid; otherwise only WORK_BPS of them (the clients' work is owed even when the target is
///   missed) and the rest of those fees is burnt (kept locked here for good): the requester
///   pays the same either way, so it gains nothing by making the target unreachable (a set
///   with wrong labels, ending training early).
/// After the deadline without a proof: if the requester revealed its set, the task settles as a
/// missed target (WORK_BPS of the fees to the clients, the rest burnt); if
/// it did not, the requester forfeits the whole escrow to the clients, so withholding the set
/// never pays. Each client's share is proportional to its epochs neither flagged nor absent;
/// whatever the clients do not get and is not burnt (the fees of epochs not run, rounding dust)
/// goes back to the requester (when no client earned anything, no work is owed, so a forfeit
/// too returns to the requester). Everyone withdraws their credit (pull payments).
/// @dev Its external functions, events and errors are declared (and documented) in IRewardManager.
abstract contract RewardManager is SlashingManager, ReentrancyGuard, IRewardManager {
    uint256 public immutable ROUND_PERIOD;
    uint256 public immutable EVALUATION_PERIOD;
    uint256 public immutable PROOF_PERIOD;
    uint256 public immutable WORK_BPS;

    mapping(address => uint256) private _credits;
    uint256 private _creditsHeld;
    uint256 private _burnt;

    constructor(uint256 roundPeriod, uint256 evaluationPeriod, uint256 proofPeriod, uint256 workBps) {
        if (workBps > 10_000) revert RewardManager__BadPolicy();
        ROUND_PERIOD = roundPeriod;
        EVALUATION_PERIOD = evaluationPeriod;
        PROOF_PERIOD = proofPeriod;
        WORK_BPS = workBps;
    }

    function endTraining(uint256 taskId) external {
        Task storage task = _requireStatus(taskId, Status.Active);
        // A proposed round resolves within its window and disputes: it is not a silent aggregator.
        if (_roundPending(task, taskId)) revert MPSRollup__RoundPending(taskId);
        uint256 until = uint256(task.phaseStartedAt) + ROUND_PERIOD;
        if (block.timestamp <= until) {
            if (msg.sender != task.requester) revert RewardManager__RoundPeriodNotOver(until);
            if (task.epochsRun == 0) revert RewardManager__NoEpochRun();
        }
        if (task.epochsRun == 0) {
            _cancel(task, taskId);
        } else {
            _startEvaluation(task, taskId);
        }
    }

    function revealEvaluationSet(uint256 taskId, bytes32 salt, bytes calldata setCommitments) external {
        Task storage task = _requireStatus(taskId, Status.Evaluating);
        if (block.timestamp > task.evaluationDeadline) revert RewardManager__DeadlinePassed(task.evaluationDeadline);
        if (task.evaluationRevealed) revert RewardManager__AlreadyRevealed();
        bytes32 committed = evaluationCommitment(salt, keccak256(setCommitments));
        if (committed != task.params.evaluationSet) {
            revert RewardManager__WrongEvaluationSet(task.params.evaluationSet, committed);
        }
        task.evaluationRevealed = true;
        task.evaluationDeadline = uint64(block.timestamp + PROOF_PERIOD);
        emit EvaluationSetRevealed(taskId, salt, setCommitments, task.evaluationDeadline);
    }

    function submitAccuracy(
        uint256 taskId,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external {
        Task storage task = _requireStatus(taskId, Status.Evaluating);
        // A pending accuracy claim is settled by its own game (OptimisticRounds).
        if (_accuracyClaimPending(task, taskId)) revert RewardManager__AccuracyClaimPending(taskId);
        if (block.timestamp > task.evaluationDeadline) revert RewardManager__DeadlinePassed(task.evaluationDeadline);
        (uint256 correct, uint256 rangeError) = _provenAccuracy(task, salt, proof, instances, vka, modelCommitment);
        _settleOnAccuracy(task, taskId, correct, rangeError != 0);
    }

    function checkAccuracy(
        uint256 taskId,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external returns (uint256 correct, uint256 rangeError) {
        return _provenAccuracy(_requireStatus(taskId, Status.Evaluating), salt, proof, instances, vka, modelCommitment);
    }

    function checkAccuracyClaim(uint256 taskId, uint256 correct) external view {
        Task storage task = _requireStatus(taskId, Status.Evaluating);
        if (!task.evaluationRevealed) revert RewardManager__NotRevealed();
        if (block.timestamp > task.evaluationDeadline) revert RewardManager__DeadlinePassed(task.evaluationDeadline);
        if (correct > task.params.evaluationSize) revert RewardManager__BadCount(correct);
    }

    function settleOnClaimedAccuracy(uint256 taskId, uint256 correct, bool rangeError) external {
        if (msg.sender != address(_optimisticRounds)) revert MPSRollup__NotOptimisticRounds(msg.sender);
        _settleOnAccuracy(_requireStatus(taskId, Status.Evaluating), taskId, correct, rangeError);
    }

    function reopenAccuracy(uint256 taskId) external {
        if (msg.sender != address(_optimisticRounds)) revert MPSRollup__NotOptimisticRounds(msg.sender);
        Task storage task = _requireStatus(taskId, Status.Evaluating);
        task.evaluationDeadline = uint64(block.timestamp + PROOF_PERIOD);
        emit ProofWindowReopened(taskId, task.evaluationDeadline);
    }

    function settle(uint256 taskId) external {
        Task storage task = _requireStatus(taskId, Status.Evaluating);
        if (block.timestamp <= task.evaluationDeadline) revert RewardManager__DeadlineNotPassed(task.evaluationDeadline);
        if (_accuracyClaimPending(task, taskId)) revert RewardManager__AccuracyClaimPending(taskId);
        if (task.evaluationRevealed) {
            _settle(task, taskId, uint256(task.epochsRun) * task.params.feePerEpoch, true);
        } else {
            emit EvaluationForfeited(taskId);
            _settle(task, taskId, task.escrow, false);
        }
    }

    /// @dev The count and range flag the accuracy proof(s) prove on the task's final model and
    /// exactly the set commitments the requester committed to (and revealed). No clock here: a
    /// claim made within the proof window must be answerable after it (a challenger would else
    /// wait out the window to take an honest claimer's bond); `submitAccuracy` checks the window.
    function _provenAccuracy(
        Task storage task,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) private returns (uint256 correct, uint256 rangeError) {
        bytes32 model = keccak256(modelCommitment);
        if (model != task.globalModel) revert RewardManager__WrongModel(task.globalModel, model);
        bytes32 setHash;
        (correct, rangeError, setHash) = task.params.accuracyVerifier.verifyAccuracy(proof, instances, vka, modelCommitment);
        bytes32 committed = evaluationCommitment(salt, setHash);
        if (committed != task.params.evaluationSet) {
            revert RewardManager__WrongEvaluationSet(task.params.evaluationSet, committed);
        }
    }

    /// @dev Pays on a proven (or claimed and unchallenged) count: a set out of range pays the full
    /// fee (nobody can prove an accuracy on it, and the requester chose it); else the target decides.
    function _settleOnAccuracy(Task storage task, uint256 taskId, uint256 correct, bool rangeError) private {
        uint256 fees = uint256(task.epochsRun) * task.params.feePerEpoch;
        if (rangeError) {
            emit EvaluationSetUnprovable(taskId);
            _settle(task, taskId, fees, false);
            return;
        }
        uint256 size = task.params.evaluationSize;
        bool reached = correct * 10_000 >= uint256(task.params.desiredAccuracyBps) * size;
        emit AccuracyProven(taskId, correct, size, reached);
        _settle(task, taskId, fees, !reached);
    }

    function _accuracyClaimPending(Task storage task, uint256 taskId) private view returns (bool) {
        return task.params.verification == 1 && _optimisticRounds.isAccuracyPending(taskId);
    }

    function evaluationCommitment(bytes32 salt, bytes32 setHash) public pure returns (bytes32) {
        return keccak256(abi.encode(salt, setHash));
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask, uint256 absentMask)
        internal
        override
    {
        super._afterRound(task, taskId, epoch, flaggedMask, absentMask);
        if (epoch == task.params.maxEpochs) _startEvaluation(task, taskId);
    }

    function _startEvaluation(Task storage task, uint256 taskId) private {
        task.status = Status.Evaluating;
        task.evaluationDeadline = uint64(block.timestamp + EVALUATION_PERIOD);
        emit EvaluationStarted(taskId, task.epochsRun, task.evaluationDeadline);
    }

    /// @dev Pays `fees` to the clients in proportion to the epochs they were neither flagged nor
    /// absent, or on a `missed` target only WORK_BPS of them, burning the rest of `fees`; what is
    /// left of the escrow goes back to the requester.
    function _settle(Task storage task, uint256 taskId, uint256 fees, bool missed) private {
        task.status = Status.Completed;
        uint256 escrow = task.escrow;
        task.escrow = 0;
        _escrowHeld -= escrow;
        uint256 payout = missed ? (fees * WORK_BPS) / 10_000 : fees;
        uint256 burnt = fees - payout;
        (uint256[] memory unflagged, uint256 earned) = _unflaggedEpochs(task, taskId);
        uint256 rewarded;
        if (earned != 0) {
            for (uint256 i = 0; i < task.clients.length; ++i) {
                uint256 share = (payout * unflagged[i]) / earned;
                rewarded += share;
                _credit(task.clients[i], share);
            }
        }
        _burnt += burnt;
        _credit(task.requester, escrow - rewarded - burnt);
        _unlockAll(task);
        emit TaskCompleted(taskId, task.epochsRun, rewarded, escrow - rewarded - burnt, burnt);
    }

    function evaluationDeadline(uint256 taskId) external view returns (uint256) {
        return _tasks[taskId].evaluationDeadline;
    }

    function withdrawCredit() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert RewardManager__NothingToWithdraw();
        _credits[msg.sender] = 0;
        _creditsHeld -= amount;
        emit CreditWithdrawn(msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert RewardManager__TransferFailed();
    }

    function creditOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    function creditsHeld() external view returns (uint256) {
        return _creditsHeld;
    }

    function burntHeld() external view returns (uint256) {
        return _burnt;
    }

    function _credit(address account, uint256 amount) internal override {
        if (amount == 0) return;
        _credits[account] += amount;
        _creditsHeld += amount;
    }
}
