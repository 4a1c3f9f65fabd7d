// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {TaskEscrow} from "./TaskEscrow.sol";

/// @title MPSRollup
/// @notice The Model Parameters Sharing chain: one batch per (task, epoch) holding each
/// client's update commitment and its EIP-712 signature over (chainId, this contract, taskId,
/// epoch, commitment); a state root chained from the previous one; the global model
/// commitment of each epoch. Its state transition is the proven Krum round: a batch lands only
/// with a proof, checked by the task's RoundVerifier, over exactly the signed commitments.
/// The RoundSubmitted events carry everything needed to rebuild and re-check the history.
///
/// Absence: a round may leave out clients that did not commit in time, at most min(f, n - m - f)
/// of them, so that the m selected come from at least m + f present clients (Multi-Krum's
/// guarantee) and no absent slot enters a present client's score. Their slot holds the
/// verifier's absent commitment and an all-zero signature, only once the epoch's commit window
/// (COMMIT_PERIOD from its start) is over, and the proof must treat exactly those slots as absent.
/// An absent client earns nothing for the epoch but is not flagged: the chain cannot tell a
/// client that did not commit from one the aggregator left out. A client that wants to be sure
/// it is included posts its commitment here itself during the window (`postCommitment`); a round
/// must then carry exactly that commitment in its slot.
///
/// Flags: Multi-Krum always leaves n - m clients out, honest ones too when fewer attack, so
/// being left out is not enough: a present client is flagged when it is left out and its proven
/// Krum score exceeds OUTLIER_BPS / 10000 times the largest selected score. Copies cannot frame
/// anyone: each committed vector carries its slot's tag, checked by the circuit, so no two
/// slots can hold the same commitment.
abstract contract MPSRollup is TaskEscrow {
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

    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant UPDATE_TYPEHASH = keccak256("UpdateCommitment(uint256 taskId,uint256 epoch,bytes commitment)");
    uint256 public immutable OUTLIER_BPS;
    uint256 public immutable COMMIT_PERIOD;
    uint256 private constant _HALF_CURVE_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // taskId => epoch => slot => keccak256 of the commitment the client posted itself
    mapping(uint256 => mapping(uint256 => mapping(uint256 => bytes32))) private _posted;

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

    constructor(uint256 outlierBps, uint256 commitPeriod) {
        if (outlierBps < 10_000 || outlierBps > type(uint32).max) revert MPSRollup__BadOutlierRatio();
        OUTLIER_BPS = outlierBps;
        COMMIT_PERIOD = commitPeriod;
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, keccak256("StakeLearn"), keccak256("1"), block.chainid, address(this)));
    }

    /// @notice The digest client `i` signs for its commitment (EIP-712).
    function updateDigest(uint256 taskId, uint256 epoch, bytes calldata commitment) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(UPDATE_TYPEHASH, taskId, epoch, keccak256(commitment)));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice When the current epoch's commit window closes: after it, a round may leave out
    /// the clients that neither signed nor posted a commitment.
    function commitDeadline(uint256 taskId) public view returns (uint256) {
        return uint256(_tasks[taskId].phaseStartedAt) + COMMIT_PERIOD;
    }

    /// @notice An enrolled client puts its commitment for the current epoch on chain itself,
    /// during the commit window: the round must then include it (no one can pass it off as absent).
    function postCommitment(uint256 taskId, bytes calldata commitment) external {
        Task storage task = _requireStatus(taskId, Status.Active);
        uint256 slot = _clientSlot[taskId][msg.sender];
        if (slot == 0) revert MPSRollup__NotEnrolled(msg.sender);
        uint256 closes = commitDeadline(taskId);
        if (block.timestamp > closes) revert MPSRollup__CommitWindowClosed(closes);
        if (commitment.length != 64) revert MPSRollup__BatchSize();
        uint256 epoch = uint256(task.epochsRun) + 1;
        if (_posted[taskId][epoch][slot - 1] != 0) revert MPSRollup__AlreadyPosted(slot - 1);
        _posted[taskId][epoch][slot - 1] = keccak256(commitment);
        emit CommitmentPosted(taskId, epoch, msg.sender, commitment);
    }

    /// @notice keccak256 of the commitment client `slot` posted for `epoch` (zero: none).
    function postedCommitment(uint256 taskId, uint256 epoch, uint256 slot) external view returns (bytes32) {
        return _posted[taskId][epoch][slot];
    }

    /// @notice Submits one epoch of a task: exactly once, in order, from the recorded model.
    function submitRound(Round calldata round) external {
        Task storage task = _requireStatus(round.taskId, Status.Active);
        uint256 expected = uint256(task.epochsRun) + 1;
        if (round.epoch != expected || expected > task.params.maxEpochs) revert MPSRollup__WrongEpoch(expected, round.epoch);
        if (round.previousModel != task.globalModel) revert MPSRollup__WrongPreviousModel(task.globalModel, round.previousModel);
        uint256 n = task.clients.length;
        if (round.commitments.length != 64 * (n + 1) || round.signatures.length != 65 * n) revert MPSRollup__BatchSize();
        uint256 absentMask = _checkSlots(task, round, n);
        (uint256 selectedMask, uint256 provenAbsent) =
            task.params.verifier.verifyRound(round.proof, round.instances, round.vka, round.commitments);
        // A signed slot the circuit treats as absent (tag 0) would be paid for sending nothing.
        if (provenAbsent != absentMask) revert MPSRollup__AbsenceMismatch(absentMask, provenAbsent);
        uint256 flaggedMask = _outlierMask(round.instances, selectedMask, n) & ~absentMask;

        bytes32 globalModel = keccak256(round.commitments[64 * n:]);
        bytes32 stateRoot = keccak256(
            abi.encode(
                task.stateRoot,
                round.taskId,
                round.epoch,
                keccak256(round.commitments),
                keccak256(round.signatures),
                flaggedMask,
                absentMask,
                globalModel
            )
        );
        task.epochsRun = uint32(round.epoch);
        task.phaseStartedAt = uint64(block.timestamp);
        task.globalModel = globalModel;
        task.stateRoot = stateRoot;
        emit RoundSubmitted(
            round.taskId, round.epoch, stateRoot, globalModel, selectedMask, flaggedMask, absentMask, round.commitments, round.signatures
        );
        _afterRound(task, round.taskId, round.epoch, flaggedMask, absentMask);
    }

    /// @dev Each slot holds the client's posted commitment, or one it signed, or (after the
    /// commit window, at most min(f, n - m - f) of them) the absent commitment with an all-zero signature.
    function _checkSlots(Task storage task, Round calldata round, uint256 n) private view returns (uint256 absentMask) {
        uint256 absent;
        for (uint256 i = 0; i < n; ++i) {
            bytes calldata commitment = round.commitments[64 * i:64 * (i + 1)];
            bytes calldata signature = round.signatures[65 * i:65 * (i + 1)];
            bytes32 posted = _posted[round.taskId][round.epoch][i];
            if (posted != 0) {
                if (keccak256(commitment) != posted) revert MPSRollup__PostedCommitmentMissing(i);
            } else if (_isZero(signature)) {
                if (keccak256(commitment) != task.params.verifier.absentCommitment()) revert MPSRollup__NotAbsentCommitment(i);
                absentMask |= 1 << i;
                ++absent;
            } else if (_recover(updateDigest(round.taskId, round.epoch, commitment), signature) != task.clients[i]) {
                revert MPSRollup__BadSignature(i);
            }
        }
        if (absent != 0) {
            uint256 closes = uint256(task.phaseStartedAt) + COMMIT_PERIOD;
            if (block.timestamp <= closes) revert MPSRollup__CommitWindowOpen(closes);
            uint256 allowed = _allowedAbsent(task.params);
            if (absent > allowed) revert MPSRollup__TooManyAbsent(absent, allowed);
        }
    }

    /// @dev Clients left out whose score (instances[i], proven) is over OUTLIER_BPS / 10000 times
    /// the largest selected score. Proven scores are far below 2^200, so the products cannot overflow.
    function _outlierMask(uint256[] calldata scores, uint256 selectedMask, uint256 n) internal view returns (uint256 mask) {
        uint256 best;
        for (uint256 i = 0; i < n; ++i) {
            if ((selectedMask >> i) & 1 == 1 && scores[i] > best) best = scores[i];
        }
        for (uint256 i = 0; i < n; ++i) {
            if ((selectedMask >> i) & 1 == 0 && scores[i] * 10_000 > best * OUTLIER_BPS) mask |= 1 << i;
        }
    }

    /// @dev min(f, n - m - f): createTask guarantees m + f <= n.
    function _allowedAbsent(TaskParams storage params) private view returns (uint256) {
        uint256 spare = uint256(params.n) - params.m - params.f;
        return spare < params.f ? spare : params.f;
    }

    function _isZero(bytes calldata signature) private pure returns (bool) {
        return bytes32(signature[0:32]) == 0 && bytes32(signature[32:64]) == 0 && signature[64] == 0;
    }

    function _recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > _HALF_CURVE_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }

    function _afterRound(Task storage task, uint256 taskId, uint256 epoch, uint256 flaggedMask, uint256 absentMask)
        internal
        virtual;
}
