// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IStakingRegistry} from "./interfaces/IStakingRegistry.sol";
import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";
import {IAccuracyVerifier} from "./interfaces/IAccuracyVerifier.sol";
import {ITaskEscrow} from "./interfaces/ITaskEscrow.sol";
import {IOptimisticRounds} from "./interfaces/IOptimisticRounds.sol";

/// @title TaskEscrow
/// @notice A requester posts a task, pays BASE_FEE (kept: spam resistance) and escrows
/// maxEpochs x feePerEpoch; staked clients enroll; the task starts when n have enrolled. The
/// requester may cancel before it starts, and anyone may once ENROLLMENT_PERIOD has passed,
/// so enrolled stakes are never locked by a task that does not fill.
/// Verifiers are the protocol's: a task names a RoundVerifier and an AccuracyVerifier that
/// GOVERNANCE approved as a pair (same SRS and logrows, so the accuracy proof's model commitment
/// is the round's), never arbitrary contracts of the requester's choosing.
/// @dev Its external functions, events and errors are declared (and documented) in ITaskEscrow.
abstract contract TaskEscrow is ITaskEscrow {
    struct Task {
        TaskParams params;
        address requester;
        Status status;
        uint32 epochsRun;
        uint64 phaseStartedAt; // Open: creation; Active: start of the current epoch
        uint64 evaluationDeadline; // Evaluating: the reveal deadline, then the proof deadline
        bool evaluationRevealed; // the requester published its evaluation set before the deadline
        uint256 escrow; // ether still held for this task
        bytes32 globalModel;
        bytes32 stateRoot;
        address[] clients;
    }

    uint256 public immutable BASE_FEE;
    IStakingRegistry public immutable REGISTRY;
    address public immutable GOVERNANCE;
    uint256 public immutable ENROLLMENT_PERIOD;
    /// @notice Where clients and auditors start reading this contract's event logs, in bounded
    /// ranges: public RPC nodes refuse `fromBlock=0` scans.
    uint256 public immutable DEPLOYMENT_BLOCK;

    mapping(address => address) private _approvedAccuracyVerifier; // round verifier => its pair

    // Where optimistic tasks' rounds are proposed and disputed; set once by GOVERNANCE.
    IOptimisticRounds internal _optimisticRounds;

    mapping(uint256 => Task) internal _tasks;
    mapping(uint256 => mapping(address => uint256)) internal _clientSlot; // index + 1
    uint256 internal _taskCount;
    uint256 internal _baseFeesHeld;
    uint256 internal _escrowHeld;

    constructor(uint256 baseFee, IStakingRegistry registry, uint256 enrollmentPeriod) {
        BASE_FEE = baseFee;
        REGISTRY = registry;
        GOVERNANCE = msg.sender;
        ENROLLMENT_PERIOD = enrollmentPeriod;
        DEPLOYMENT_BLOCK = block.number;
    }

    function approveVerifiers(IRoundVerifier roundVerifier, IAccuracyVerifier accuracyVerifier) external {
        if (msg.sender != GOVERNANCE) revert TaskEscrow__NotGovernance(msg.sender);
        _approvedAccuracyVerifier[address(roundVerifier)] = address(accuracyVerifier);
        emit VerifiersApproved(address(roundVerifier), address(accuracyVerifier));
    }

    function setOptimisticRounds(IOptimisticRounds rounds) external {
        if (msg.sender != GOVERNANCE) revert TaskEscrow__NotGovernance(msg.sender);
        if (address(_optimisticRounds) != address(0)) revert TaskEscrow__OptimisticRoundsSet();
        _optimisticRounds = rounds;
        emit OptimisticRoundsSet(address(rounds));
    }

    function optimisticRounds() external view returns (IOptimisticRounds) {
        return _optimisticRounds;
    }

    /// @dev Whether an optimistic task has a round proposed and not yet final or void: its epoch
    /// is then fixed (no post, no other round, no end of training).
    function _roundPending(Task storage task, uint256 taskId) internal view returns (bool) {
        return task.params.verification == 1 && _optimisticRounds.isPending(taskId);
    }

    function approvedAccuracyVerifier(address roundVerifier) external view returns (address) {
        return _approvedAccuracyVerifier[roundVerifier];
    }

    function createTask(TaskParams calldata params) external payable returns (uint256 taskId) {
        if (params.n <= 2 * uint256(params.f) + 2 || params.m == 0 || params.m > params.n - params.f) {
            revert TaskEscrow__BadParams();
        }
        if (params.maxEpochs == 0 || params.desiredAccuracyBps > 10_000) revert TaskEscrow__BadParams();
        address pair = _approvedAccuracyVerifier[address(params.verifier)];
        if (pair == address(0) || pair != address(params.accuracyVerifier)) {
            revert TaskEscrow__VerifierNotApproved(address(params.verifier), address(params.accuracyVerifier));
        }
        if (params.evaluationSize == 0 || params.accuracyVerifier.samples() != params.evaluationSize) {
            revert TaskEscrow__BadParams();
        }
        // The task's shape is the circuit's: its f and m decide how many absent clients a round
        // may leave out (see MPSRollup).
        uint256 verifierClients = params.verifier.clients();
        if (verifierClients != params.n || params.verifier.byzantine() != params.f || params.verifier.selected() != params.m) {
            revert TaskEscrow__VerifierShape(verifierClients, params.n);
        }
        if (params.verification > 1) revert TaskEscrow__BadParams();
        if (params.verification == 1 && address(_optimisticRounds) == address(0)) revert TaskEscrow__NoOptimisticRounds();
        uint8 rule = params.verifier.aggregation();
        if (rule != params.aggregation) revert TaskEscrow__VerifierRule(rule, params.aggregation);
        uint256 escrow = uint256(params.maxEpochs) * params.feePerEpoch;
        if (msg.value != BASE_FEE + escrow) revert TaskEscrow__WrongPayment(msg.value, BASE_FEE + escrow);
        taskId = ++_taskCount;
        Task storage task = _tasks[taskId];
        task.params = params;
        task.requester = msg.sender;
        task.status = Status.Open;
        task.phaseStartedAt = uint64(block.timestamp);
        task.escrow = escrow;
        task.globalModel = params.initialModel;
        _baseFeesHeld += BASE_FEE;
        _escrowHeld += escrow;
        emit TaskCreated(taskId, msg.sender, params, escrow);
    }

    function enroll(uint256 taskId) external {
        Task storage task = _requireStatus(taskId, Status.Open);
        if (_clientSlot[taskId][msg.sender] != 0) revert TaskEscrow__AlreadyEnrolled(msg.sender);
        REGISTRY.lock(msg.sender);
        task.clients.push(msg.sender);
        _clientSlot[taskId][msg.sender] = task.clients.length;
        emit ClientEnrolled(taskId, msg.sender, task.clients.length - 1);
        if (task.clients.length == task.params.n) {
            task.status = Status.Active;
            task.phaseStartedAt = uint64(block.timestamp);
            emit TaskStarted(taskId, task.clients);
        }
    }

    function cancel(uint256 taskId) external {
        Task storage task = _requireStatus(taskId, Status.Open);
        uint256 until = uint256(task.phaseStartedAt) + ENROLLMENT_PERIOD;
        if (msg.sender != task.requester && block.timestamp <= until) revert TaskEscrow__EnrollmentOpen(until);
        _cancel(task, taskId);
    }

    /// @dev Ends a task in which no work was done: escrow refunded, stakes unlocked.
    function _cancel(Task storage task, uint256 taskId) internal {
        task.status = Status.Cancelled;
        uint256 refund = task.escrow;
        task.escrow = 0;
        _escrowHeld -= refund;
        _credit(task.requester, refund);
        _unlockAll(task);
        emit TaskCancelled(taskId, refund);
    }

    function task(uint256 taskId)
        external
        view
        returns (address requester, Status status, uint256 epochsRun, uint256 escrow, bytes32 globalModel, bytes32 stateRoot)
    {
        Task storage t = _tasks[taskId];
        return (t.requester, t.status, t.epochsRun, t.escrow, t.globalModel, t.stateRoot);
    }

    function phaseStartedAt(uint256 taskId) external view returns (uint256) {
        return _tasks[taskId].phaseStartedAt;
    }

    function taskParams(uint256 taskId) external view returns (TaskParams memory) {
        return _tasks[taskId].params;
    }

    function clientsOf(uint256 taskId) external view returns (address[] memory) {
        return _tasks[taskId].clients;
    }

    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    function baseFeesHeld() external view returns (uint256) {
        return _baseFeesHeld;
    }

    function escrowHeld() external view returns (uint256) {
        return _escrowHeld;
    }

    function _requireStatus(uint256 taskId, Status status) internal view returns (Task storage task) {
        task = _tasks[taskId];
        if (task.status != status) revert TaskEscrow__WrongStatus(taskId, task.status);
    }

    function _unlockAll(Task storage task) internal {
        for (uint256 i = 0; i < task.clients.length; ++i) {
            REGISTRY.unlock(task.clients[i]);
        }
    }

    function _credit(address account, uint256 amount) internal virtual;
}
