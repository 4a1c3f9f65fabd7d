// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IOptimisticRounds} from "./interfaces/IOptimisticRounds.sol";
import {IStakeLearnProtocol} from "./interfaces/IStakeLearnProtocol.sol";
import {IRoundVerifier} from "./interfaces/IRoundVerifier.sol";
import {IChunkedRoundVerifier} from "./interfaces/IChunkedRoundVerifier.sol";
import {ChunkMerkle} from "./libraries/ChunkMerkle.sol";

/// @title OptimisticRounds
/// @notice Rounds verified only when challenged (see IOptimisticRounds). It holds the bonds and
/// the disputes; the protocol checks each claim's slots and signatures when it is proposed
/// (`checkClaim`) and records the round only when it is final (`recordClaim`), or reopens its
/// epoch when it is void (`reopenEpoch`); only this contract may call those two.
/// Ether held here always equals the bonds of pending rounds and open disputes + unpaid credits
/// + bonds burnt.
/// @dev Its external functions, events and errors are declared (and documented) in IOptimisticRounds.
contract OptimisticRounds is IOptimisticRounds, ReentrancyGuard {
    uint256 private constant _FIELD_MODULUS =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct Pending {
        address proposer;
        uint40 challengeDeadline;
        uint16 openDisputes;
        State state;
        uint32 nonce; // proposals of the task so far: disputes are keyed by it
        bytes32 claimHash;
    }

    struct Dispute {
        Kind kind;
        bool proposerToMove;
        uint64 deadline;
        uint32 level; // tree disputes: the node's height (0: a leaf)
        uint32 index; // and its index at that height
        bytes32 node; // its digest
        bytes32 left; // after a split: the children's digests
        bytes32 right;
    }

    IStakeLearnProtocol public immutable PROTOCOL;
    uint256 public immutable CHALLENGE_PERIOD;
    uint256 public immutable ANSWER_PERIOD;
    uint256 public immutable PROPOSER_BOND;
    uint256 public immutable CHALLENGER_BOND;

    mapping(uint256 => Pending) private _pending;
    mapping(bytes32 => Dispute) private _disputes; // keccak256(taskId, nonce, challenger)
    mapping(address => uint256) private _credits;

    struct AccuracyClaim {
        address claimer;
        uint40 challengeDeadline;
        uint16 openDisputes;
        State state;
        uint32 nonce;
        uint32 correct;
        bool rangeError;
    }

    mapping(uint256 => AccuracyClaim) private _accuracy;
    mapping(bytes32 => uint64) private _accuracyDisputes; // keccak256(taskId, nonce, challenger) => answer deadline
    uint256 public burnt;

    constructor(
        IStakeLearnProtocol protocol,
        uint256 challengePeriod,
        uint256 answerPeriod,
        uint256 proposerBond_,
        uint256 challengerBond
    ) {
        PROTOCOL = protocol;
        CHALLENGE_PERIOD = challengePeriod;
        ANSWER_PERIOD = answerPeriod;
        PROPOSER_BOND = proposerBond_;
        CHALLENGER_BOND = challengerBond;
    }

    function proposerBond(uint256 taskId) public view returns (uint256) {
        (,, uint256 fee,) = PROTOCOL.verificationOf(taskId);
        return _bond(fee);
    }

    function propose(Claim calldata claim, string calldata bundleUri) external payable returns (uint256 nonce) {
        Pending storage p = _pending[claim.taskId];
        if (p.state == State.Pending) revert OptimisticRounds__RoundPending(claim.taskId);
        // A chunked claim without its tree root loses any tree dispute; a one-proof claim's is unused.
        (uint256 verification,, uint256 fee,) = PROTOCOL.verificationOf(claim.taskId);
        if (verification != 1) revert OptimisticRounds__NotOptimistic(claim.taskId);
        uint256 bond = _bond(fee);
        if (msg.value != bond) revert OptimisticRounds__WrongBond(msg.value, bond);
        // The protocol's checks of a proven round's slots, bar the proof: task, epoch, previous
        // model, every signature or posted commitment, the absent slots' rules; the flags; and
        // what recording it will write (the task's state cannot move while it is pending).
        Outcome memory outcome = Outcome(claim.epoch, claim.selectedMask, 0, 0, 0, 0);
        (outcome.absentMask, outcome.flaggedMask, outcome.globalModel, outcome.stateRoot) = PROTOCOL.checkClaim(
            claim.taskId, claim.epoch, claim.previousModel, claim.commitments, claim.signatures, claim.scores
        );
        nonce = p.nonce + 1;
        uint256 deadline = block.timestamp + CHALLENGE_PERIOD;
        (p.proposer, p.challengeDeadline, p.openDisputes, p.state, p.nonce) =
            (msg.sender, uint40(deadline), 0, State.Pending, uint32(nonce));
        p.claimHash = keccak256(abi.encode(keccak256(abi.encode(claim)), outcome));
        emit RoundProposed(claim.taskId, claim.epoch, msg.sender, nonce, claim, outcome, bundleUri, deadline);
    }

    function challenge(uint256 taskId, Kind kind) external payable {
        Pending storage p = _requirePending(taskId);
        if (block.timestamp > p.challengeDeadline) revert OptimisticRounds__WindowClosed(p.challengeDeadline);
        if (msg.value != CHALLENGER_BOND) revert OptimisticRounds__WrongBond(msg.value, CHALLENGER_BOND);
        (, IRoundVerifier verifier,,) = PROTOCOL.verificationOf(taskId);
        uint256 chunks = verifier.chunks();
        bool chunked = chunks != 0;
        if (kind == Kind.None || (kind == Kind.Round) == chunked) revert OptimisticRounds__WrongKind(kind);
        Dispute storage d = _disputes[_disputeKey(taskId, p.nonce, msg.sender)];
        if (d.kind != Kind.None) revert OptimisticRounds__AlreadyChallenged(msg.sender);
        d.kind = kind;
        d.proposerToMove = true;
        d.deadline = uint64(block.timestamp + ANSWER_PERIOD);
        // A tree dispute starts at the root (node zero: the claim's gramRoot, read at the first answer).
        if (kind == Kind.Tree) d.level = uint32(ChunkMerkle.depth(chunks));
        p.openDisputes += 1;
        emit RoundChallenged(taskId, p.nonce, msg.sender, kind, d.deadline);
    }

    function answerRound(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka
    ) external {
        (Pending storage p, Dispute storage d) = _answering(claim, outcome, challenger, Kind.Round);
        (uint256 selectedMask, uint256 absentMask, uint256[] memory scores) =
            _verifier(claim.taskId).verifyRound(proof, instances, vka, claim.commitments);
        _requireOutcome(claim, outcome, selectedMask, absentMask, scores);
        _proposerWins(claim.taskId, p, d, challenger);
    }

    function answerCombine(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes32 rootInner,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka
    ) external {
        (Pending storage p, Dispute storage d) = _answering(claim, outcome, challenger, Kind.Combine);
        IChunkedRoundVerifier verifier = IChunkedRoundVerifier(address(_verifier(claim.taskId)));
        (uint256 selectedMask, uint256 absentMask, uint256[] memory scores, bytes32 gramHash) =
            verifier.checkCombine(proof, instances, vka);
        _requireOutcome(claim, outcome, selectedMask, absentMask, scores);
        if (_digest(rootInner, gramHash) != claim.gramRoot) revert OptimisticRounds__AnswerMismatch();
        _proposerWins(claim.taskId, p, d, challenger);
    }

    function answerSplit(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes32 leftInner,
        uint256[] calldata leftSum,
        bytes32 rightInner,
        uint256[] calldata rightSum
    ) external {
        (, Dispute storage d) = _answering(claim, outcome, challenger, Kind.Tree);
        uint256 taskId = claim.taskId;
        uint256 t = leftSum.length;
        if (d.level == 0 || rightSum.length != t || t != _gramLength(taskId)) revert OptimisticRounds__AnswerMismatch();
        uint256[] memory sum = new uint256[](t);
        for (uint256 j = 0; j < t; ++j) {
            if (leftSum[j] >= _FIELD_MODULUS || rightSum[j] >= _FIELD_MODULUS) revert OptimisticRounds__AnswerMismatch();
            sum[j] = addmod(leftSum[j], rightSum[j], _FIELD_MODULUS);
        }
        bytes32 left = _digest(leftInner, keccak256(abi.encodePacked(leftSum)));
        bytes32 right = _digest(rightInner, keccak256(abi.encodePacked(rightSum)));
        bytes32 node = _node(d, claim);
        if (_digest(keccak256(abi.encode(left, right)), keccak256(abi.encodePacked(sum))) != node) {
            revert OptimisticRounds__AnswerMismatch();
        }
        (d.node, d.left, d.right, d.proposerToMove) = (node, left, right, false);
        d.deadline = uint64(block.timestamp + ANSWER_PERIOD);
        emit NodeSplit(taskId, challenger, d.level, d.index, left, right);
    }

    function choose(uint256 taskId, bool right) external {
        Pending storage p = _requirePending(taskId);
        Dispute storage d = _disputes[_disputeKey(taskId, p.nonce, msg.sender)];
        _requireTurn(d, Kind.Tree, false);
        d.node = right ? d.right : d.left;
        d.level -= 1;
        d.index = d.index * 2 + (right ? 1 : 0);
        d.proposerToMove = true;
        d.deadline = uint64(block.timestamp + ANSWER_PERIOD);
        emit NodeChosen(taskId, msg.sender, d.level, d.index);
    }

    function answerLeaf(
        Claim calldata claim,
        Outcome calldata outcome,
        address challenger,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes32[] calldata paths
    ) external {
        (Pending storage p, Dispute storage d) = _answering(claim, outcome, challenger, Kind.Tree);
        if (d.level != 0) revert OptimisticRounds__AnswerMismatch();
        bytes32 node = _node(d, claim);
        IChunkedRoundVerifier verifier = IChunkedRoundVerifier(address(_verifier(claim.taskId)));
        uint256 chunks = verifier.CHUNKS();
        uint256 k = d.index;
        uint256 n = claim.scores.length;
        if (k >= chunks) {
            // A padding leaf: no chunk, nothing summed.
            uint256[] memory zero = new uint256[](n * (n + 1) / 2);
            if (node != _digest(0, keccak256(abi.encodePacked(zero)))) revert OptimisticRounds__AnswerMismatch();
        } else {
            (uint256 selectedMask, uint256 absentMask, bytes32 gramHash) = verifier.checkChunk(proof, instances, vka);
            if (selectedMask != claim.selectedMask || absentMask != outcome.absentMask) {
                revert OptimisticRounds__AnswerMismatch();
            }
            if (node != _digest(keccak256(proof[:64 * (n + 1)]), gramHash)) revert OptimisticRounds__AnswerMismatch();
            _requireSignedChunks(claim.commitments, proof, k, chunks, paths);
        }
        _proposerWins(claim.taskId, p, d, challenger);
    }

    function timeout(uint256 taskId, uint256 nonce, address challenger) external nonReentrant {
        bytes32 key = _disputeKey(taskId, nonce, challenger);
        Dispute storage d = _disputes[key];
        if (d.kind == Kind.None) revert OptimisticRounds__NoDispute(challenger);
        Pending storage p = _pending[taskId];
        if (p.nonce != nonce || p.state != State.Pending) {
            // Its round was voided by another dispute: the challenger was right too.
            delete _disputes[key];
            _credit(challenger, CHALLENGER_BOND);
            emit DisputeClosed(taskId, nonce, challenger, false);
            return;
        }
        if (block.timestamp <= d.deadline) revert OptimisticRounds__TooEarly(d.deadline);
        if (d.proposerToMove) {
            _void(taskId, p, challenger);
            delete _disputes[key];
        } else {
            _proposerWins(taskId, p, d, challenger);
        }
    }

    function finalize(uint256 taskId, bytes32 claimDigest, Outcome calldata outcome) external {
        Pending storage p = _requirePending(taskId);
        if (keccak256(abi.encode(claimDigest, outcome)) != p.claimHash) revert OptimisticRounds__WrongClaim();
        if (block.timestamp <= p.challengeDeadline) revert OptimisticRounds__WindowOpen(p.challengeDeadline);
        if (p.openDisputes != 0) revert OptimisticRounds__DisputesOpen(p.openDisputes);
        p.state = State.Final;
        PROTOCOL.recordClaim(taskId, outcome);
        emit RoundFinalized(taskId, outcome.epoch, p.nonce);
        _returnBond(p.proposer, taskId);
    }

    function pending(uint256 taskId)
        external
        view
        returns (State state, address proposer, uint256 nonce, uint256 challengeDeadline, uint256 openDisputes, bytes32 hash)
    {
        Pending storage p = _pending[taskId];
        return (p.state, p.proposer, p.nonce, p.challengeDeadline, p.openDisputes, p.claimHash);
    }

    function isPending(uint256 taskId) external view returns (bool) {
        return _pending[taskId].state == State.Pending;
    }

    function dispute(uint256 taskId, uint256 nonce, address challenger)
        external
        view
        returns (Kind kind, bool proposerToMove, uint256 deadline, uint256 level, uint256 index, bytes32 node)
    {
        Dispute storage d = _disputes[_disputeKey(taskId, nonce, challenger)];
        return (d.kind, d.proposerToMove, d.deadline, d.level, d.index, d.node);
    }

    function claimHash(Claim calldata claim, Outcome calldata outcome) external pure returns (bytes32) {
        return keccak256(abi.encode(keccak256(abi.encode(claim)), outcome));
    }

    function creditOf(address account) external view returns (uint256) {
        return _credits[account];
    }

    function withdrawCredit() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert OptimisticRounds__NothingToWithdraw();
        _credits[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        (bool sent,) = msg.sender.call{value: amount}("");
        if (!sent) revert OptimisticRounds__TransferFailed();
    }

    // --- the accuracy claim -----------------------------------------------------------------

    function claimAccuracy(uint256 taskId, uint256 correct, bool rangeError) external payable returns (uint256 nonce) {
        AccuracyClaim storage a = _accuracy[taskId];
        if (a.state == State.Pending) revert OptimisticRounds__RoundPending(taskId);
        (uint256 verification,, uint256 fee,) = PROTOCOL.verificationOf(taskId);
        if (verification != 1) revert OptimisticRounds__NotOptimistic(taskId);
        // An evaluating task whose set is revealed, within its proof window, and a count it can hold.
        PROTOCOL.checkAccuracyClaim(taskId, correct);
        uint256 bond = _bond(fee);
        if (msg.value != bond) revert OptimisticRounds__WrongBond(msg.value, bond);
        nonce = a.nonce + 1;
        uint256 deadline = block.timestamp + CHALLENGE_PERIOD;
        (a.claimer, a.challengeDeadline, a.openDisputes, a.state, a.nonce, a.correct, a.rangeError) =
            (msg.sender, uint40(deadline), 0, State.Pending, uint32(nonce), uint32(correct), rangeError);
        emit AccuracyClaimed(taskId, msg.sender, nonce, correct, rangeError, deadline);
    }

    function challengeAccuracy(uint256 taskId) external payable {
        AccuracyClaim storage a = _requireAccuracyPending(taskId);
        if (block.timestamp > a.challengeDeadline) revert OptimisticRounds__WindowClosed(a.challengeDeadline);
        if (msg.value != CHALLENGER_BOND) revert OptimisticRounds__WrongBond(msg.value, CHALLENGER_BOND);
        bytes32 key = _disputeKey(taskId, a.nonce, msg.sender);
        if (_accuracyDisputes[key] != 0) revert OptimisticRounds__AlreadyChallenged(msg.sender);
        uint64 deadline = uint64(block.timestamp + ANSWER_PERIOD);
        _accuracyDisputes[key] = deadline;
        a.openDisputes += 1;
        emit AccuracyChallenged(taskId, a.nonce, msg.sender, deadline);
    }

    function answerAccuracy(
        uint256 taskId,
        address challenger,
        bytes32 salt,
        bytes calldata proof,
        uint256[] calldata instances,
        bytes32[] calldata vka,
        bytes calldata modelCommitment
    ) external {
        AccuracyClaim storage a = _requireAccuracyPending(taskId);
        bytes32 key = _disputeKey(taskId, a.nonce, challenger);
        uint64 deadline = _accuracyDisputes[key];
        if (deadline == 0) revert OptimisticRounds__NoDispute(challenger);
        if (block.timestamp > deadline) revert OptimisticRounds__TooLate(deadline);
        // The eager path's checks: the final model, the committed set, the pinned circuit.
        (uint256 correct, uint256 rangeError) = PROTOCOL.checkAccuracy(taskId, salt, proof, instances, vka, modelCommitment);
        if (correct != a.correct || (rangeError != 0) != a.rangeError) revert OptimisticRounds__AnswerMismatch();
        delete _accuracyDisputes[key];
        a.openDisputes -= 1;
        _credit(a.claimer, CHALLENGER_BOND);
        emit AccuracyDisputeClosed(taskId, a.nonce, challenger, true);
    }

    function timeoutAccuracy(uint256 taskId, uint256 nonce, address challenger) external nonReentrant {
        bytes32 key = _disputeKey(taskId, nonce, challenger);
        uint64 deadline = _accuracyDisputes[key];
        if (deadline == 0) revert OptimisticRounds__NoDispute(challenger);
        AccuracyClaim storage a = _accuracy[taskId];
        delete _accuracyDisputes[key];
        if (a.nonce != nonce || a.state != State.Pending) {
            _credit(challenger, CHALLENGER_BOND); // its claim was voided by another dispute
            emit AccuracyDisputeClosed(taskId, nonce, challenger, false);
            return;
        }
        if (block.timestamp <= deadline) revert OptimisticRounds__TooEarly(deadline);
        a.state = State.Void;
        _forfeitBond(taskId, challenger);
        // The proof window opens again in full: a false claim cannot run out the clock.
        PROTOCOL.reopenAccuracy(taskId);
        emit AccuracyDisputeClosed(taskId, nonce, challenger, false);
        emit AccuracyVoided(taskId, nonce, challenger);
    }

    function finalizeAccuracy(uint256 taskId) external {
        AccuracyClaim storage a = _requireAccuracyPending(taskId);
        if (block.timestamp <= a.challengeDeadline) revert OptimisticRounds__WindowOpen(a.challengeDeadline);
        if (a.openDisputes != 0) revert OptimisticRounds__DisputesOpen(a.openDisputes);
        a.state = State.Final;
        PROTOCOL.settleOnClaimedAccuracy(taskId, a.correct, a.rangeError);
        emit AccuracyFinalized(taskId, a.nonce, a.correct, a.rangeError);
        _returnBond(a.claimer, taskId);
    }

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
        )
    {
        AccuracyClaim storage a = _accuracy[taskId];
        return (a.state, a.claimer, a.nonce, a.challengeDeadline, a.openDisputes, a.correct, a.rangeError);
    }

    function isAccuracyPending(uint256 taskId) external view returns (bool) {
        return _accuracy[taskId].state == State.Pending;
    }

    function accuracyDispute(uint256 taskId, uint256 nonce, address challenger) external view returns (uint256) {
        return _accuracyDisputes[_disputeKey(taskId, nonce, challenger)];
    }

    function _requireAccuracyPending(uint256 taskId) private view returns (AccuracyClaim storage a) {
        a = _accuracy[taskId];
        if (a.state != State.Pending) revert OptimisticRounds__NotPending(taskId);
    }

    /// @dev The pending claim these are, and the caller's dispute of the given kind, the proposer to move.
    function _answering(Claim calldata claim, Outcome calldata outcome, address challenger, Kind kind)
        private
        view
        returns (Pending storage p, Dispute storage d)
    {
        p = _requireClaim(claim, outcome);
        d = _disputes[_disputeKey(claim.taskId, p.nonce, challenger)];
        _requireTurn(d, kind, true);
    }

    /// @dev The node a tree dispute stands at: the claim's root until the first split.
    function _node(Dispute storage d, Claim calldata claim) private view returns (bytes32) {
        return d.node == 0 ? claim.gramRoot : d.node;
    }

    function _requireClaim(Claim calldata claim, Outcome calldata outcome) private view returns (Pending storage p) {
        p = _requirePending(claim.taskId);
        if (keccak256(abi.encode(keccak256(abi.encode(claim)), outcome)) != p.claimHash) revert OptimisticRounds__WrongClaim();
    }

    function _requirePending(uint256 taskId) private view returns (Pending storage p) {
        p = _pending[taskId];
        if (p.state != State.Pending) revert OptimisticRounds__NotPending(taskId);
    }

    function _requireTurn(Dispute storage d, Kind kind, bool proposerToMove) private view {
        if (d.kind != kind) revert OptimisticRounds__WrongKind(d.kind);
        if (d.proposerToMove != proposerToMove) revert OptimisticRounds__NotYourTurn();
        if (block.timestamp > d.deadline) revert OptimisticRounds__TooLate(d.deadline);
    }

    /// @dev The proven selection, absent slots and scores must be the claim's.
    function _requireOutcome(
        Claim calldata claim,
        Outcome calldata outcome,
        uint256 selectedMask,
        uint256 absentMask,
        uint256[] memory scores
    ) private pure {
        if (
            selectedMask != claim.selectedMask || absentMask != outcome.absentMask
                || keccak256(abi.encodePacked(scores)) != keccak256(abi.encodePacked(claim.scores))
        ) revert OptimisticRounds__AnswerMismatch();
    }

    /// @dev Each slot's chunk-k commitment in the proof is leaf k of the Merkle root it signed.
    function _requireSignedChunks(
        bytes calldata commitments,
        bytes calldata proof,
        uint256 k,
        uint256 chunks,
        bytes32[] calldata paths
    ) private pure {
        uint256 slots = commitments.length / 64;
        uint256 depth = ChunkMerkle.depth(chunks);
        if (paths.length != slots * depth) revert OptimisticRounds__AnswerMismatch();
        for (uint256 i = 0; i < slots; ++i) {
            bytes32 leaf = keccak256(proof[64 * i:64 * (i + 1)]);
            bytes32 root = ChunkMerkle.rootOf(leaf, k, paths[depth * i:depth * (i + 1)]);
            if (root != bytes32(commitments[64 * i:64 * i + 32]) || uint256(bytes32(commitments[64 * i + 32:64 * (i + 1)])) != chunks) {
                revert OptimisticRounds__AnswerMismatch();
            }
        }
    }

    function _proposerWins(uint256 taskId, Pending storage p, Dispute storage d, address challenger) private {
        delete d.kind;
        delete d.node;
        delete d.left;
        delete d.right;
        p.openDisputes -= 1;
        _credit(p.proposer, CHALLENGER_BOND);
        emit DisputeClosed(taskId, p.nonce, challenger, true);
    }

    /// @dev The proposer lost: its bond is forfeit and the epoch reopens.
    function _void(uint256 taskId, Pending storage p, address challenger) private {
        p.state = State.Void;
        _forfeitBond(taskId, challenger);
        emit DisputeClosed(taskId, p.nonce, challenger, false);
        emit RoundVoided(taskId, PROTOCOL.reopenEpoch(taskId), p.nonce, challenger);
    }

    /// @dev A final claim's bond goes straight back (a stipend's worth of gas: no reentry, and a
    /// claimer that refuses ether cannot hold the claim up); if it is refused, it waits as a credit.
    function _returnBond(address claimer, uint256 taskId) private {
        uint256 bond = proposerBond(taskId);
        (bool sent,) = claimer.call{value: bond, gas: 2300}("");
        if (!sent) _credit(claimer, bond);
    }

    /// @dev A void claim's bond: half to the challenger that won (with its own bond back), half
    /// burnt, so that challenging one's own claim never pays.
    function _forfeitBond(uint256 taskId, address challenger) private {
        uint256 bond = proposerBond(taskId);
        _credit(challenger, CHALLENGER_BOND + bond / 2);
        burnt += bond - bond / 2;
    }

    function _credit(address account, uint256 amount) private {
        _credits[account] += amount;
    }

    function _gramLength(uint256 taskId) private view returns (uint256) {
        (,,, uint256 n) = PROTOCOL.verificationOf(taskId);
        return n * (n + 1) / 2;
    }

    function _verifier(uint256 taskId) private view returns (IRoundVerifier verifier) {
        (, verifier,,) = PROTOCOL.verificationOf(taskId);
    }

    function _bond(uint256 feePerEpoch) private view returns (uint256) {
        return feePerEpoch > PROPOSER_BOND ? feePerEpoch : PROPOSER_BOND;
    }

    function _disputeKey(uint256 taskId, uint256 nonce, address challenger) private pure returns (bytes32) {
        return keccak256(abi.encode(taskId, nonce, challenger));
    }

    function _digest(bytes32 inner, bytes32 sumHash) private pure returns (bytes32) {
        return keccak256(abi.encode(inner, sumHash));
    }
}
