// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IStakingRegistry} from "./IStakingRegistry.sol";
import {IRoundVerifier} from "./IRoundVerifier.sol";
import {IAccuracyVerifier} from "./IAccuracyVerifier.sol";
import {IOptimisticRounds} from "./IOptimisticRounds.sol";

/// @title Tasks: creation, enrollment, cancellation (TaskEscrow.sol)
interface ITaskEscrow {
    enum Status {
        None,
        Open,
        Active,
        Completed,
        Cancelled,
        Evaluating
    }

    struct TaskParams {
        bytes32 modelSpecHash;
        uint8 n;
        uint8 f;
        uint8 m;
        uint8 aggregation; // 0 Multi-Krum, 1 NNM then Multi-Krum: the verifier's rule
        uint16 desiredAccuracyBps;
        uint32 maxEpochs;
        uint128 feePerEpoch;
        IRoundVerifier verifier;
        bytes32 initialModel; // keccak256 of the initial global model's commitment
        bytes32 evaluationSet; // keccak256(abi.encode(salt, keccak256(the set's commitments, see RewardManager)))
        uint32 evaluationSize; // its number of samples
        IAccuracyVerifier accuracyVerifier;
        uint8 verification; // 0 eager: every round proven at submitRound; 1 optimistic: OptimisticRounds
    }

    event TaskCreated(uint256 indexed taskId, address indexed requester, TaskParams params, uint256 escrow);
    event ClientEnrolled(uint256 indexed taskId, address indexed client, uint256 index);
    event TaskStarted(uint256 indexed taskId, address[] clients);
    event TaskCancelled(uint256 indexed taskId, uint256 refund);
    event VerifiersApproved(address indexed roundVerifier, address indexed accuracyVerifier);
    event OptimisticRoundsSet(address rounds);

    error TaskEscrow__WrongPayment(uint256 sent, uint256 required);
    error TaskEscrow__BadParams();
    error TaskEscrow__VerifierShape(uint256 verifierClients, uint256 n);
    error TaskEscrow__VerifierRule(uint8 verifierRule, uint8 rule);
    error TaskEscrow__WrongStatus(uint256 taskId, Status status);
    error TaskEscrow__AlreadyEnrolled(address client);
    error TaskEscrow__NotGovernance(address caller);
    error TaskEscrow__VerifierNotApproved(address roundVerifier, address accuracyVerifier);
    error TaskEscrow__EnrollmentOpen(uint256 until);
    error TaskEscrow__NoOptimisticRounds();
    error TaskEscrow__OptimisticRoundsSet();

    /// @notice The fee a requester pays per task on top of the escrow, kept (spam resistance).
    function BASE_FEE() external view returns (uint256);

    function REGISTRY() external view returns (IStakingRegistry);

    /// @notice The deployer: the only one who approves verifier pairs.
    function GOVERNANCE() external view returns (address);

    /// @notice Seconds an Open task waits for its clients before anyone may cancel it.
    function ENROLLMENT_PERIOD() external view returns (uint256);

    /// @notice The block this contract was deployed in: clients and auditors read its event logs
    /// from there, in bounded ranges, since public RPC nodes refuse `fromBlock=0` scans.
    function DEPLOYMENT_BLOCK() external view returns (uint256);

    /// @notice Governance vouches for a round verifier and the accuracy verifier paired with it
    /// (both pin VKAs of circuits built for one task shape at one SRS and logrows).
    function approveVerifiers(IRoundVerifier roundVerifier, IAccuracyVerifier accuracyVerifier) external;

    /// @notice Governance names, once, the OptimisticRounds contract of this deployment: the only
    /// one that may record an optimistic task's round or reopen its epoch.
    function setOptimisticRounds(IOptimisticRounds rounds) external;

    function optimisticRounds() external view returns (IOptimisticRounds);

    /// @notice The accuracy verifier approved with `roundVerifier` (zero: not approved).
    function approvedAccuracyVerifier(address roundVerifier) external view returns (address);

    /// @notice Posts a task; send BASE_FEE + maxEpochs x feePerEpoch. Its verifiers must be an
    /// approved pair whose circuits take the task's shape (n, f, m, evaluation size).
    function createTask(TaskParams calldata params) external payable returns (uint256 taskId);

    /// @notice Enrolls the caller, locking its stake until the task ends.
    function enroll(uint256 taskId) external;

    /// @notice Cancels a task that has not started: the requester at any time, anyone once
    /// ENROLLMENT_PERIOD has passed. The escrow comes back to the requester as a credit
    /// (BASE_FEE is kept) and enrolled clients are unlocked.
    function cancel(uint256 taskId) external;

    function task(uint256 taskId)
        external
        view
        returns (address requester, Status status, uint256 epochsRun, uint256 escrow, bytes32 globalModel, bytes32 stateRoot);

    /// @notice When the task's current phase started (Open: creation; Active: the current epoch).
    function phaseStartedAt(uint256 taskId) external view returns (uint256);

    function taskParams(uint256 taskId) external view returns (TaskParams memory);

    function clientsOf(uint256 taskId) external view returns (address[] memory);

    function taskCount() external view returns (uint256);

    function baseFeesHeld() external view returns (uint256);

    function escrowHeld() external view returns (uint256);
}
