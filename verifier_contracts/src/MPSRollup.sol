// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {TaskEscrow} from "./TaskEscrow.sol";
import {IMPSRollup} from "./interfaces/IMPSRollup.sol";
import {Signatures} from "./libraries/Signatures.sol";
import {IOptimisticRounds} from "./interfaces/IOptimisticRounds.sol";
import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";

/// @title MPSRollup
/// @notice The Model Parameters Sharing chain: one batch per (task, epoch) holding each
/// client's update commitment and its EIP-712 signature over (chainId, this contract, taskId,
/// epoch, commitment); a state root chained from the previous one; the global model
/// commitment of each epoch. Its state transition is the proven Krum round: a batch lands only
/// with a proof, checked by the task's RoundVerifier, over exactly the signed commitments.
/// The RoundSubmitted events carry everything needed to rebuild and re-check the history.
///
/// Absence: a round may leave out clients that did not commit in time, at most
/// min(f, n - m - f, n - 2f - 3) of them (`allowedAbsent`), so that at least m + f clients are
/// present (the m selected come from more than f others: Multi-Krum's guarantee) and at least
/// 2f + 3 (Krum's: more than 2f + 2 present, so the reference score below is never a
/// colluder's pick among too few honest scores); no absent slot enters a present client's
/// score. Their slot holds the verifier's absent commitment and an all-zero signature, only once
/// the epoch's commit window (COMMIT_PERIOD from its start) is over, and the proof must treat
/// exactly those slots as absent. An absent client earns nothing for the epoch: the chain cannot
/// tell a client that did not commit from one the aggregator left out. A client that wants to be
/// sure it is included posts its commitment for the open epoch here itself during the window
/// (`postCommitment`, which names the epoch so that a post cannot land in the next one); a round
/// must then carry exactly that commitment in its slot.
///
/// Flags: a present client is flagged when its proven raw Krum score (of its committed update,
/// whatever the task's aggregation rule) exceeds OUTLIER_BPS / 10000 times the reference score,
/// the (p - f)-th smallest of the p present clients' scores. A flagged epoch earns nothing; it
/// never costs stake (SlashingManager): an honest client with unusual (non-IID) data can be an
/// outlier, and up to f colluders scoring low push the reference down to the (p - 2f)-th honest
/// score, so a score is never proof of a violation. Not "left out": the selection always leaves
/// n - m clients out, honest ones too, and NNM mixes an outlier in by design. Copies cannot
/// flag anyone: each committed vector carries its slot's tag, checked by the circuit, so no two
/// slots can hold the same commitment.
/// @dev Its external functions, events and errors are declared (and documented) in IMPSRollup.
abstract contract MPSRollup is TaskEscrow, EIP712, IMPSRollup {
    bytes32 public constant UPDATE_TYPEHASH = keccak256("UpdateCommitment(uint256 taskId,uint256 epoch,bytes commitment)");
    uint256 public immutable OUTLIER_BPS;
    uint256 public immutable COMMIT_PERIOD;

    // taskId => epoch => slot => keccak256 of the commitment the client posted itself
    mapping(uint256 => mapping(uint256 => mapping(uint256 => bytes32))) private _posted;
    // taskId => epoch => the slots that posted: one read tells a round which `_posted` to check
    mapping(uint256 => mapping(uint256 => uint256)) private _postedSlots;

    /// @dev The domain the Python clients sign under (eth_account's encode_typed_data): keep it.
    constructor(uint256 outlierBps, uint256 commitPeriod) EIP712("StakeLearn", "1") {
        if (outlierBps < 10_000 || outlierBps > type(uint32).max) revert MPSRollup__BadOutlierRatio();
        OUTLIER_BPS = outlierBps;
        COMMIT_PERIOD = commitPeriod;
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function updateDigest(uint256 taskId, uint256 epoch, bytes calldata commitment) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(UPDATE_TYPEHASH, taskId, epoch, keccak256(commitment))));
    }

    function commitDeadline(uint256 taskId) public view returns (uint256) {
        return uint256(_tasks[taskId].phaseStartedAt) + COMMIT_PERIOD;
    }

    function postCommitment(uint256 taskId, uint256 epoch, bytes calldata commitment) external {
        Task storage task = _requireStatus(taskId, Status.Active);
        uint256 open = uint256(task.epochsRun) + 1;
        if (epoch != open) revert MPSRollup__WrongEpoch(open, epoch);
        uint256 slot = _clientSlot[taskId][msg.sender];
        if (slot == 0) revert MPSRollup__NotEnrolled(msg.sender);
        uint256 closes = commitDeadline(taskId);
        if (block.timestamp > closes) revert MPSRollup__CommitWindowClosed(closes);
        if (commitment.length != 64) revert MPSRollup__BatchSize();
        if (_posted[taskId][epoch][slot - 1] != 0) revert MPSRollup__AlreadyPosted(slot - 1);
        // A proposed round has fixed this epoch's slots.
        if (_roundPending(task, taskId)) revert MPSRollup__RoundPending(taskId);
        _posted[taskId][epoch][slot - 1] = keccak256(commitment);
        _postedSlots[taskId][epoch] |= 1 << (slot - 1);
        emit CommitmentPosted(taskId, epoch, msg.sender, commitment);
    }

    function postedCommitment(uint256 taskId, uint256 epoch, uint256 slot) external view returns (bytes32) {
        return _posted[taskId][epoch][slot];
    }

    function submitRound(Round calldata round) external {
        Task storage task = _requireNext(round.taskId, round.epoch, round.previousModel);
        if (task.params.verification != 0) revert MPSRollup__OptimisticTask(round.taskId);
        uint256 n = task.clients.length;
        uint256 absentMask = _checkSlots(task, round.taskId, round.epoch, round.commitments, round.signatures);
        (uint256 selectedMask, uint256 provenAbsent, uint256[] memory scores) =
            task.params.verifier.verifyRound(round.proof, round.instances, round.vka, round.commitments);
        // A signed slot the circuit treats as absent (tag 0) would be paid for sending nothing.
        if (provenAbsent != absentMask) revert MPSRollup__AbsenceMismatch(absentMask, provenAbsent);
        uint256 flaggedMask = _outlierMask(scores, absentMask, n, task.params.f);
        _recordRound(task, round.taskId, round.epoch, round.commitments, round.signatures, selectedMask, flaggedMask, absentMask);
    }

    function checkClaim(
        uint256 taskId,
        uint256 epoch,
        bytes32 previousModel,
        bytes calldata commitments,
        bytes calldata signatures,
        uint256[] calldata scores
    ) external view returns (uint256 absentMask, uint256 flaggedMask, bytes32 globalModel, bytes32 stateRoot) {
        Task storage task = _requireNext(taskId, epoch, previousModel);
        if (task.params.verification != 1) revert MPSRollup__OptimisticTask(taskId);
        uint256 n = task.clients.length;
        if (scores.length != n) revert MPSRollup__BatchSize();
        absentMask = _checkSlots(task, taskId, epoch, commitments, signatures);
        flaggedMask = _outlierMask(scores, absentMask, n, task.params.f);
        globalModel = keccak256(commitments[64 * n:]);
        stateRoot = _nextStateRoot(task, taskId, epoch, commitments, signatures, flaggedMask, absentMask, globalModel);
    }

    function recordClaim(uint256 taskId, IOptimisticRounds.Outcome calldata outcome) external {
        if (msg.sender != address(_optimisticRounds)) revert MPSRollup__NotOptimisticRounds(msg.sender);
        // Checked when proposed; while it was pending neither the task nor its epoch could move.
        Task storage task = _requireStatus(taskId, Status.Active);
        // The batch itself is in OptimisticRounds' RoundProposed event, not repeated here.
        _landRound(task, taskId, outcome.epoch, outcome.stateRoot, outcome.globalModel);
        emit RoundSubmitted(
            taskId, outcome.epoch, outcome.stateRoot, outcome.globalModel, outcome.selectedMask,
            outcome.flaggedMask, outcome.absentMask, "", ""
        );
        _afterRound(task, taskId, outcome.epoch, outcome.flaggedMask, outcome.absentMask);
    }

    function verificationOf(uint256 taskId)
        external
        view
        returns (uint256 verification, IRoundVerifier verifier, uint256 feePerEpoch, uint256 n)
    {
        TaskParams storage params = _tasks[taskId].params;
        return (params.verification, params.verifier, params.feePerEpoch, params.n);
    }

    function reopenEpoch(uint256 taskId) external returns (uint256 epoch) {
        if (msg.sender != address(_optimisticRounds)) revert MPSRollup__NotOptimisticRounds(msg.sender);
        Task storage task = _tasks[taskId];
        // The void round's epoch starts again: a new commit window, a new round period.
        task.phaseStartedAt = uint64(block.timestamp);
        epoch = uint256(task.epochsRun) + 1;
        emit EpochReopened(taskId, epoch);
    }

    /// @dev The active task whose next epoch is `epoch`, from the recorded global model.
    function _requireNext(uint256 taskId, uint256 epoch, bytes32 previousModel) private view returns (Task storage task) {
        task = _requireStatus(taskId, Status.Active);
        uint256 expected = uint256(task.epochsRun) + 1;
        if (epoch != expected || expected > task.params.maxEpochs) revert MPSRollup__WrongEpoch(expected, epoch);
        if (previousModel != task.globalModel) revert MPSRollup__WrongPreviousModel(task.globalModel, previousModel);
    }

    /// @dev Lands a proven round: the state root, the next epoch, the flags and the records.
    function _recordRound(
        Task storage task,
        uint256 taskId,
        uint256 epoch,
        bytes calldata commitments,
        bytes calldata signatures,
        uint256 selectedMask,
        uint256 flaggedMask,
        uint256 absentMask
    ) private {
        bytes32 globalModel = keccak256(commitments[64 * task.clients.length:]);
        bytes32 stateRoot =
            _nextStateRoot(task, taskId, epoch, commitments, signatures, flaggedMask, absentMask, globalModel);
        _landRound(task, taskId, epoch, stateRoot, globalModel);
        emit RoundSubmitted(taskId, epoch, stateRoot, globalModel, selectedMask, flaggedMask, absentMask, commitments, signatures);
        _afterRound(task, taskId, epoch, flaggedMask, absentMask);
    }

    function _landRound(Task storage task, uint256 taskId, uint256 epoch, bytes32 stateRoot, bytes32 globalModel) private {
        task.epochsRun = uint32(epoch);
        task.phaseStartedAt = uint64(block.timestamp);
        task.globalModel = globalModel;
        task.stateRoot = stateRoot;
    }

    /// @dev The state root after a round: the previous one chained with its batch and outcome.
    function _nextStateRoot(
        Task storage task,
        uint256 taskId,
        uint256 epoch,
        bytes calldata commitments,
        bytes calldata signatures,
        uint256 flaggedMask,
        uint256 absentMask,
        bytes32 globalModel
    ) private view returns (bytes32) {
        return keccak256(
            abi.encode(
                task.stateRoot,
                taskId,
                epoch,
                keccak256(commitments),
                keccak256(signatures),
                flaggedMask,
                absentMask,
                globalModel
            )
        );
    }

    /// @dev Each slot holds the client's posted commitment, or one it signed, or (after the
    /// commit window, at most `allowedAbsent` of them) the absent commitment with an all-zero signature.
    function _checkSlots(
        Task storage task,
        uint256 taskId,
        uint256 epoch,
        bytes calldata commitments,
        bytes calldata signatures
    ) private view returns (uint256 absentMask) {
        uint256 n = task.clients.length;
        if (commitments.length != 64 * (n + 1) || signatures.length != 65 * n) revert MPSRollup__BatchSize();
        uint256 absent;
        uint256 postedSlots = _postedSlots[taskId][epoch];
        for (uint256 i = 0; i < n; ++i) {
            bytes calldata commitment = commitments[64 * i:64 * (i + 1)];
            bytes calldata signature = signatures[65 * i:65 * (i + 1)];
            bytes32 posted = (postedSlots >> i) & 1 == 1 ? _posted[taskId][epoch][i] : bytes32(0);
            if (posted != 0) {
                if (keccak256(commitment) != posted) revert MPSRollup__PostedCommitmentMissing(i);
            } else if (Signatures.isZero(signature)) {
                if (keccak256(commitment) != task.params.verifier.absentCommitment()) revert MPSRollup__NotAbsentCommitment(i);
                absentMask |= 1 << i;
                ++absent;
            } else if (!Signatures.signedBy(updateDigest(taskId, epoch, commitment), signature, task.clients[i])) {
                revert MPSRollup__BadSignature(i);
            }
        }
        if (absent != 0) {
            uint256 closes = uint256(task.phaseStartedAt) + COMMIT_PERIOD;
            if (block.timestamp <= closes) revert MPSRollup__CommitWindowOpen(closes);
            uint256 allowed = allowedAbsent(task.params.n, task.params.f, task.params.m);
            if (absent > allowed) revert MPSRollup__TooManyAbsent(absent, allowed);
        }
    }

    /// @dev Present clients whose proven raw score is over OUTLIER_BPS / 10000 times the reference
    /// score (rules.py `flagged`). Proven scores are far below 2^200, so the products cannot overflow.
    function _outlierMask(uint256[] memory scores, uint256 absentMask, uint256 n, uint256 f)
        internal
        view
        returns (uint256 mask)
    {
        uint256 reference_ = _referenceScore(scores, absentMask, n, f);
        for (uint256 i = 0; i < n; ++i) {
            if ((absentMask >> i) & 1 == 0 && scores[i] * 10_000 > reference_ * OUTLIER_BPS) mask |= 1 << i;
        }
    }

    /// @dev The (p - f)-th smallest of the p present clients' scores (p >= 2f + 3 by
    /// `allowedAbsent`, so it exists and at least three honest scores lie at or below it), by an
    /// insertion sort: n is small (a task's n fits a uint8), and a sort is simple to check.
    function _referenceScore(uint256[] memory scores, uint256 absentMask, uint256 n, uint256 f)
        private
        pure
        returns (uint256)
    {
        uint256[] memory sorted = new uint256[](n);
        uint256 count;
        for (uint256 i = 0; i < n; ++i) {
            if ((absentMask >> i) & 1 == 1) continue;
            uint256 j = count++;
            for (; j > 0 && sorted[j - 1] > scores[i]; --j) {
                sorted[j] = sorted[j - 1];
            }
            sorted[j] = scores[i];
        }
        return sorted[count - f - 1];
    }

    /// @notice How many absent clients a round of a task shaped (n, f, m) may leave out:
    /// min(f, n - m - f, n - 2f - 3), so that at least m + f and at least 2f + 3 clients are
    /// present (createTask guarantees n >= 2f + 3 and n >= m + f, so it is never negative).
    function allowedAbsent(uint256 n, uint256 f, uint256 m) public pure returns (uint256) {
        uint256 allowed = f;
        if (n - m - f < allowed) allowed = n - m - f;
        if (n - 2 * f - 3 < allowed) allowed = n - 2 * f - 3;
        return allowed;
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask, uint256 absentMask)
        internal
        virtual;
}
