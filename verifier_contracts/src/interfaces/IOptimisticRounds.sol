// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title Rounds verified on chain only when challenged (OptimisticRounds.sol)
/// @notice A task created with `verification` 1 takes its rounds here instead of through
/// `submitRound`. Whoever proposes a round posts its claim with a bond and publishes the round's
/// proofs (its bundle) off chain; the protocol checks the claim's slots and signatures exactly as
/// for a proven round. Within CHALLENGE_PERIOD anyone may challenge it with a bond; each
/// challenge is its own dispute, answered with the proofs the eager path verifies, one step at a
/// time, each within ANSWER_PERIOD. A proposer that does not answer in time loses its bond (half
/// to the challenger, half burnt) and the round is void: its epoch reopens as if no round had
/// landed. A challenger that loses (the answer holds, or it does not choose in time) pays its
/// bond to the proposer. A round no dispute voided is final once its window is over and its
/// disputes are closed: only then does the protocol record it (flags, rewards, the next epoch).
///
/// Disputes. A one-proof round: `Round`, answered by the round proof. A chunked round (K chunk
/// proofs whose partial Gram matrices add up to the one the combine proof takes): `Combine`,
/// answered by the combine proof over the claim's summed Gram; or `Tree`, a bisection over the
/// claim's partial-sum tree. Its leaves are the K chunks (padded with empty leaves to a power of
/// two); a node's digest is keccak256(inner, keccak256(sum)) with `sum` the partial Gram sum of its
/// leaves (upper triangle, in the field) and `inner` keccak256(left digest, right digest), or,
/// for leaf k, keccak256 of chunk k's n + 1 commitments (zero for a padding leaf, whose sum is
/// zero). At each node the proposer reveals its children (their inner hashes and sums, which must
/// add up to the node's) and the challenger picks the one it disputes; at a leaf the proposer
/// answers with the chunk proof, whose commitments must be leaf k of the Merkle roots the clients
/// signed. So a dispute puts at most log2(K) reveals and one proof on chain.
interface IOptimisticRounds {
    enum Kind {
        None,
        Round, // one-proof round: the round proof
        Combine, // chunked: the combine proof over the claimed Gram sum
        Tree // chunked: bisection over the partial-sum tree, then one chunk proof
    }

    enum State {
        None,
        Pending,
        Final,
        Void
    }

    /// @notice What a proposer claims of one epoch.
    struct Claim {
        uint256 taskId;
        uint256 epoch;
        bytes32 previousModel; // keccak256 of the global model commitment the round starts from
        bytes commitments; // n update commitments then the aggregate's, 64 bytes each, as signed
        bytes signatures; // n signatures, 65 bytes each; all-zero: absent (MPSRollup's rules)
        uint256 selectedMask;
        uint256[] scores; // the n raw Krum scores
        bytes32 gramRoot; // chunked rounds: the partial-sum tree's root digest; zero otherwise
        bytes32 bundleDigest; // keccak256 of the published bundle's manifest
    }

    /// @notice What the protocol derived from a claim when it was proposed (IMPSRollup.checkClaim):
    /// what `finalize` records, so that it needs nothing more than this.
    struct Outcome {
        uint256 epoch;
        uint256 selectedMask;
        uint256 absentMask;
        uint256 flaggedMask;
        bytes32 globalModel;
        bytes32 stateRoot;
    }

    event RoundProposed(
        uint256 indexed taskId,
        uint256 indexed epoch,
        address indexed proposer,
        uint256 nonce,
        Claim claim,
        Outcome outcome,
        string bundleUri,
        uint256 challengeDeadline
    );
    event RoundChallenged(
        uint256 indexed taskId, uint256 indexed nonce, address indexed challenger, Kind kind, uint256 answerDeadline
    );
    /// @notice A tree dispute's node was split: the challenger picks `left` or `right` next.
    event NodeSplit(uint256 indexed taskId, address indexed challenger, uint256 level, uint256 index, bytes32 left, bytes32 right);
    event NodeChosen(uint256 indexed taskId, address indexed challenger, uint256 level, uint256 index);
    /// @notice A dispute closed: `proposerWon` false voids the round.
    event DisputeClosed(uint256 indexed taskId, uint256 indexed nonce, address indexed challenger, bool proposerWon);
    event RoundFinalized(uint256 indexed taskId, uint256 indexed epoch, uint256 nonce);
    event RoundVoided(uint256 indexed taskId, uint256 indexed epoch, uint256 nonce, address challenger);
    event CreditWithdrawn(address indexed account, uint256 amount);
    /// @notice A claim of the final model's accuracy on the revealed set (no proof on chain).
    event AccuracyClaimed(
        uint256 indexed taskId, address indexed claimer, uint256 nonce, uint256 correct, bool rangeError, uint256 challengeDeadline
    );
    event AccuracyChallenged(uint256 indexed taskId, uint256 indexed nonce, address indexed challenger, uint256 answerDeadline);
    event AccuracyDisputeClosed(uint256 indexed taskId, uint256 indexed nonce, address indexed challenger, bool claimerWon);
    event AccuracyFinalized(uint256 indexed taskId, uint256 nonce, uint256 correct, bool rangeError);
    event AccuracyVoided(uint256 indexed taskId, uint256 nonce, address challenger);

    error OptimisticRounds__NotOptimistic(uint256 taskId);
    error OptimisticRounds__RoundPending(uint256 taskId);
    error OptimisticRounds__NotPending(uint256 taskId);
    error OptimisticRounds__WrongBond(uint256 sent, uint256 required);
    error OptimisticRounds__WrongClaim();
    error OptimisticRounds__WindowClosed(uint256 closedAt);
    error OptimisticRounds__WindowOpen(uint256 until);
    error OptimisticRounds__DisputesOpen(uint256 open);
    error OptimisticRounds__WrongKind(Kind kind);
    error OptimisticRounds__AlreadyChallenged(address challenger);
    error OptimisticRounds__NoDispute(address challenger);
    error OptimisticRounds__NotYourTurn();
    error OptimisticRounds__TooLate(uint256 deadline);
    error OptimisticRounds__TooEarly(uint256 deadline);
    error OptimisticRounds__AnswerMismatch();
    error OptimisticRounds__NothingToWithdraw();
    error OptimisticRounds__TransferFailed();

    // --- the accuracy claim: the same game over the task's accuracy proofs ---------------------

    /// @notice Claims, with `proposerBond(taskId)`, that the final model gets `correct` of the
    /// revealed set right (or that the set is out of range), for an optimistic task whose set is
    /// revealed and whose proof window is open. While it is pending, nobody settles the task.
    function claimAccuracy(uint256 taskId, uint256 correct, bool rangeError) external payable returns (uint256 nonce);

    /// @notice Challenges the pending accuracy claim with CHALLENGER_BOND, within its window.
    function challengeAccuracy(uint256 taskId) external payable;

    /// @notice Answers `challenger`'s dispute with the accuracy proof(s) `submitAccuracy` takes;
    /// they must prove exactly the claimed count and range flag.
    function answerAccuracy(
        uint256 taskId,
        address challenger,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external;

    /// @notice As `timeout`, for an accuracy dispute: an unanswered one voids the claim (the
    /// proof window opens again in full), one that outlived a void claim is refunded.
    function timeoutAccuracy(uint256 taskId, uint256 nonce, address challenger) external;

    /// @notice Settles the task on a pending accuracy claim whose window is over and whose disputes are closed.
    function finalizeAccuracy(uint256 taskId) external;

    /// @notice The task's latest accuracy claim: state, claimer, nonce, challenge deadline, open
    /// disputes, count, range flag.
    function accuracyClaim(uint256 taskId)
        external
        view
        returns (
            State state,
            address claimer,
            uint256 nonce,
            uint256 challengeDeadline,
            uint256 openDisputes,
            uint256 correct,
            bool rangeError
        );

    /// @notice Whether an accuracy claim of the task is pending.
    function isAccuracyPending(uint256 taskId) external view returns (bool);

    /// @notice An accuracy dispute's answer deadline (zero: none open).
    function accuracyDispute(uint256 taskId, uint256 nonce, address challenger) external view returns (uint256);

    /// @notice Seconds after a proposal during which anyone may challenge it.
    function CHALLENGE_PERIOD() external view returns (uint256);

    /// @notice Seconds each side has for each step of a dispute.
    function ANSWER_PERIOD() external view returns (uint256);

    /// @notice The least a proposer bonds; a task's bond is this or its fee per epoch, the larger,
    /// so that a false round never earns its proposer (or a requester behind it) more than it risks.
    function PROPOSER_BOND() external view returns (uint256);

    /// @notice What a challenger bonds: at least the gas of the longest answer it can force.
    function CHALLENGER_BOND() external view returns (uint256);

    function proposerBond(uint256 taskId) external view returns (uint256);

    /// @notice Posts the claim of a task's next epoch with `proposerBond(taskId)`; `bundleUri` says
    /// where its proofs are published (emitted only).
    function propose(Claim calldata claim, string calldata bundleUri) external payable returns (uint256 nonce);

    /// @notice Challenges the task's pending round with CHALLENGER_BOND; one dispute per challenger.
    function challenge(uint256 taskId, Kind kind) external payable;

    /// @notice Answers a `Round` dispute with the round proof over the claim's commitments.
    function answerRound(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka
    ) external;

    /// @notice Answers a `Combine` dispute with the combine proof; `rootInner` is the tree root's inner hash.
    function answerCombine(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes32 rootInner,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka
    ) external;

    /// @notice Reveals the children of a `Tree` dispute's node.
    function answerSplit(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes32 leftInner,
        uint256[] calldata leftSum,
        bytes32 rightInner,
        uint256[] calldata rightSum
    ) external;

    /// @notice The challenger picks the child it disputes.
    function choose(uint256 taskId, bool right) external;

    /// @notice Answers a `Tree` dispute at leaf k with chunk k's proof and, per slot (n clients and
    /// the aggregate), the Merkle path of its chunk commitment to the slot's signed root
    /// (`paths`: n + 1 paths of log2(K) siblings, slot after slot). A padding leaf takes no proof.
    function answerLeaf(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes32[] calldata paths
    ) external;

    /// @notice Closes a dispute whose side to move let its deadline pass, or that outlived its
    /// round (refunded).
    function timeout(uint256 taskId, uint256 nonce, address challenger) external;

    /// @notice Records a pending round whose window is over and whose disputes are closed.
    /// `claimDigest` is keccak256(abi.encode(claim)).
    function finalize(uint256 taskId, bytes32 claimDigest, Outcome calldata outcome) external;

    /// @notice The task's latest claim: its state, proposer, nonce, challenge deadline, open disputes
    /// and claim hash.
    function pending(uint256 taskId)
        external
        view
        returns (State state, address proposer, uint256 nonce, uint256 challengeDeadline, uint256 openDisputes, bytes32 claimHash);

    /// @notice Whether the task has a round proposed and not yet final or void.
    function isPending(uint256 taskId) external view returns (bool);

    /// @notice A dispute: its kind, whose turn (true: the proposer's), deadline, level, index and node.
    function dispute(uint256 taskId, uint256 nonce, address challenger)
        external
        view
        returns (Kind kind, bool proposerToMove, uint256 deadline, uint256 level, uint256 index, bytes32 node);

    /// @notice keccak256(abi.encode(keccak256(abi.encode(claim)), outcome)): what `pending` records.
    function claimHash(Claim calldata claim, Outcome calldata outcome) external pure returns (bytes32);

    function creditOf(address account) external view returns (uint256);

    function withdrawCredit() external;
}
