"""Optimistic rounds of a one-proof task on the embedded EVM (OptimisticRounds): a claim lands
with a bond and no proof, is final only after its window, and any false claim is voided by one
challenge the proposer cannot answer, with nobody flagged or unpaid for it."""

import pytest
from eth_utils import keccak

from stakelearn.pipeline.contracts.optimistic import (
    Bundle,
    Claim,
    Kind,
    State,
    answer,
    challenge,
    finalize,
    propose,
)
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.types import ETHER, TaskStatus

from .world import INITIAL_MODEL

FLAGGED = 0b10000  # the session round: client 4 alone scores above the reference


@pytest.fixture
def game(world):
    """An optimistic task started, its round's bundle, a proposer and two watchers with ether."""
    task_id = world.start_task(verification=1)
    bundle = Bundle(world.round, world.proof_json.parent)
    proposer, watcher, other = (new_account(world.chain, 10 * ETHER) for _ in range(3))
    return world, task_id, bundle, proposer, watcher, other


def claim_of(world, task_id, bundle, **changes) -> Claim:
    claim = bundle.claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))
    return Claim(**{**claim.__dict__, **changes})


def rounds(world):
    return world.protocol.rounds


def window_end(world, task_id):
    return rounds(world).functions.pending(task_id).call()[3]


def test_unchallenged_claim_is_final_after_its_window(game):
    world, task_id, bundle, proposer, _, _ = game
    claim = claim_of(world, task_id, bundle)
    nonce, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    assert outcome.flagged_mask == FLAGGED and outcome.absent_mask == 0
    # Pending: nothing recorded, the epoch is fixed.
    assert world.protocol.task(task_id).epochs_run == 0
    assert world.revert_name(world.clients[0], world.protocol.tasks, "postCommitment", task_id, 1, bytes(64)) == (
        "MPSRollup__RoundPending"
    )
    assert world.revert_name(world.requester, world.protocol.tasks, "endTraining", task_id) == "MPSRollup__RoundPending"
    bond = rounds(world).functions.proposerBond(task_id).call()
    assert world.chain.revert_name(proposer, rounds(world), "propose", claim.as_abi(), "", value=bond) == (
        "OptimisticRounds__RoundPending"
    )
    end = window_end(world, task_id)
    world.travel_to(end - 1)
    assert world.revert_name(proposer, rounds(world), "finalize", task_id, claim.digest, outcome.as_abi()) == (
        "OptimisticRounds__WindowOpen"
    )
    world.travel_to(end + 1)
    before = world.chain.w3.eth.get_balance(proposer.address)
    receipt = finalize(world.protocol, world.clients[0], claim, outcome)
    (landed,) = world.protocol.events_in(receipt, "RoundSubmitted")
    assert landed["args"]["flaggedMask"] == FLAGGED and world.protocol.task(task_id).epochs_run == 1
    assert landed["args"]["stateRoot"] == world.protocol.task(task_id).state_root == outcome.state_root
    assert world.chain.w3.eth.get_balance(proposer.address) == before + bond, "the bond comes straight back"
    records = [world.protocol.tasks.functions.record(task_id, c.address).call() for c in world.clients]
    assert records == [[0, 1, 0, 0] if i == 4 else [1, 0, 0, 0] for i in range(len(world.clients))]


def test_eager_and_optimistic_paths_are_kept_apart(game):
    world, task_id, bundle, proposer, _, _ = game
    args = world.round_args(task_id, 1)
    assert world.revert_name(world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__OptimisticTask"
    eager = world.start_task()
    claim = claim_of(world, eager, bundle)
    bond = rounds(world).functions.proposerBond(eager).call()
    assert world.chain.revert_name(proposer, rounds(world), "propose", claim.as_abi(), "", value=bond) == (
        "OptimisticRounds__NotOptimistic"
    )


@pytest.mark.parametrize(
    "change, error",
    [
        ({"epoch": 2}, "MPSRollup__WrongEpoch"),
        ({"previous_model": keccak(text="another model")}, "MPSRollup__WrongPreviousModel"),
    ],
)
def test_a_claim_is_checked_as_a_round_is(game, change, error):
    world, task_id, bundle, proposer, _, _ = game
    claim = claim_of(world, task_id, bundle, **change)
    bond = rounds(world).functions.proposerBond(task_id).call()
    assert world.chain.revert_name(proposer, rounds(world), "propose", claim.as_abi(), "", value=bond) == error


def test_a_wrong_signer_is_refused_at_proposal(game):
    world, task_id, bundle, proposer, _, _ = game
    signers = [proposer, *world.clients[1:]]
    signatures = world.signatures(task_id, 1, signers=signers)
    claim = claim_of(world, task_id, bundle, signatures=b"".join(signatures))
    bond = rounds(world).functions.proposerBond(task_id).call()
    assert world.chain.revert_name(proposer, rounds(world), "propose", claim.as_abi(), "", value=bond) == (
        "MPSRollup__BadSignature"
    )


def test_frivolous_challenge_pays_the_proposer(game):
    world, task_id, bundle, proposer, watcher, _ = game
    claim = claim_of(world, task_id, bundle)
    nonce, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    bond = rounds(world).functions.CHALLENGER_BOND().call()
    challenge(world.protocol, watcher, task_id, Kind.ROUND)
    receipt = answer(world.protocol, proposer, claim, outcome, watcher.address, bundle)
    (closed,) = rounds(world).events.DisputeClosed().process_receipt(receipt)
    assert closed["args"]["proposerWon"]
    assert rounds(world).functions.creditOf(proposer.address).call() == bond
    assert bond >= receipt["gasUsed"] * 30 * 10**9, "the challenger's bond covers the answer's gas at 30 gwei"
    world.travel_to(window_end(world, task_id) + 1)
    finalize(world.protocol, watcher, claim, outcome)
    assert world.protocol.task(task_id).epochs_run == 1


@pytest.mark.parametrize(
    "lie",
    ["selection", "score"],
)
def test_a_false_claim_is_voided_and_frames_nobody(game, lie):
    world, task_id, bundle, proposer, watcher, other = game
    true = claim_of(world, task_id, bundle)
    scores = list(true.scores)
    if lie == "score":  # inflate client 0's score so that it would be flagged
        scores[0] = scores[4] * 10
    mask = true.selected_mask ^ 0b11 if lie == "selection" else true.selected_mask
    claim = Claim(**{**true.__dict__, "scores": scores, "selected_mask": mask})
    nonce, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    if lie == "score":
        assert outcome.flagged_mask & 1, "the lie would flag client 0"
    challenge(world.protocol, watcher, task_id, Kind.ROUND)
    challenge(world.protocol, other, task_id, Kind.ROUND)
    proof, instances, words = bundle.submitted()
    args = (claim.as_abi(), outcome.as_abi(), watcher.address, proof, instances, words)
    assert world.revert_name(proposer, rounds(world), "answerRound", *args) == "OptimisticRounds__AnswerMismatch"
    deadline = rounds(world).functions.dispute(task_id, nonce, watcher.address).call()[2]
    world.travel_to(deadline)
    assert world.revert_name(watcher, rounds(world), "timeout", task_id, nonce, watcher.address) == (
        "OptimisticRounds__TooEarly"
    )
    world.travel_to(deadline + 1)
    receipt = world.send(watcher, rounds(world), "timeout", task_id, nonce, watcher.address)
    (reopened,) = world.protocol.events_in(receipt, "EpochReopened")
    assert reopened["args"]["epoch"] == 1
    assert rounds(world).functions.pending(task_id).call()[0] == State.VOID
    bond = rounds(world).functions.proposerBond(task_id).call()
    challenger_bond = rounds(world).functions.CHALLENGER_BOND().call()
    assert rounds(world).functions.creditOf(watcher.address).call() == challenger_bond + bond // 2
    # The second dispute outlived its round: its bond comes back.
    world.send(other, rounds(world), "timeout", task_id, nonce, other.address)
    assert rounds(world).functions.creditOf(other.address).call() == challenger_bond
    # Nobody was flagged, absent or paid for the void epoch; the true round lands on the same epoch.
    for client in world.clients:
        assert world.protocol.tasks.functions.record(task_id, client.address).call() == [0, 0, 0, 0]
    nonce, outcome, _ = propose(world.protocol, watcher, claim_of(world, task_id, bundle), "file:///bundle")
    world.travel_to(window_end(world, task_id) + 1)
    finalize(world.protocol, watcher, claim_of(world, task_id, bundle), outcome)
    assert world.protocol.task(task_id).epochs_run == 1
    held = rounds(world).functions.burnt().call()
    assert held == bond - bond // 2


def test_windows_at_their_edges(game):
    world, task_id, bundle, proposer, watcher, other = game
    claim = claim_of(world, task_id, bundle)
    nonce, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    end = window_end(world, task_id)
    world.travel_to(end - 1)  # the next block is the window's last second
    challenge(world.protocol, watcher, task_id, Kind.ROUND)
    bond = rounds(world).functions.CHALLENGER_BOND().call()
    assert world.chain.revert_name(watcher, rounds(world), "challenge", task_id, int(Kind.ROUND), value=bond) == (
        "OptimisticRounds__AlreadyChallenged"
    )
    assert world.chain.revert_name(other, rounds(world), "challenge", task_id, int(Kind.TREE), value=bond) == (
        "OptimisticRounds__WrongKind"
    )
    world.travel_to(end + 1)  # calls see the latest block's time
    assert world.chain.revert_name(other, rounds(world), "challenge", task_id, int(Kind.ROUND), value=bond) == (
        "OptimisticRounds__WindowClosed"
    )
    assert world.revert_name(proposer, rounds(world), "finalize", task_id, claim.digest, outcome.as_abi()) == (
        "OptimisticRounds__DisputesOpen"
    )
    deadline = rounds(world).functions.dispute(task_id, nonce, watcher.address).call()[2]
    world.travel_to(deadline - 1)  # the next block is the answer's last second
    answer(world.protocol, proposer, claim, outcome, watcher.address, bundle)
    finalize(world.protocol, proposer, claim, outcome)
    assert world.balances_add_up()


def test_audit_rebuilds_optimistic_rounds_from_their_final_claims(game):
    """The audit takes an optimistic round's batch from its final claim (not a voided one) and
    rebuilds the same signatures, models and state roots as for a proven round."""
    from stakelearn.pipeline.apps.audit import audit_chain

    world, task_id, bundle, proposer, watcher, _ = game
    true = claim_of(world, task_id, bundle)
    lie = Claim(**{**true.__dict__, "selected_mask": true.selected_mask ^ 0b11})
    nonce, outcome, _ = propose(world.protocol, proposer, lie, "file:///bundle")
    challenge(world.protocol, watcher, task_id, Kind.ROUND)
    world.travel_to(rounds(world).functions.dispute(task_id, nonce, watcher.address).call()[2] + 1)
    world.send(watcher, rounds(world), "timeout", task_id, nonce, watcher.address)
    previous = INITIAL_MODEL
    for epoch in (1, 2):
        claim = bundle.claim(task_id, epoch, previous, world.signatures(task_id, epoch))
        _, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
        world.travel_to(window_end(world, task_id) + 1)
        finalize(world.protocol, proposer, claim, outcome)
        previous = outcome.global_model
    problems, rebuilt = audit_chain(world.protocol, task_id)
    assert problems == []
    assert [r["epoch"] for r in rebuilt] == [1, 2]
    assert [r["selected_mask"] for r in rebuilt] == [true.selected_mask] * 2
    assert rebuilt[0]["commitments"] == [c.hex() for c in world.commitments]


# --- the accuracy claim ----------------------------------------------------------------------


def evaluating(world, task_id, bundle, proposer):
    """The task's one round final, training ended, the set revealed: the proof window is open."""
    from .world import EVALUATION_SALT, REVEALED

    claim = claim_of(world, task_id, bundle)
    _, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    world.travel_to(window_end(world, task_id) + 1)
    finalize(world.protocol, proposer, claim, outcome)
    tasks = world.protocol.tasks
    world.send(world.requester, tasks, "endTraining", task_id)
    world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)


def accuracy_end(world, task_id):
    return rounds(world).functions.accuracyClaim(task_id).call()[3]


def test_an_unchallenged_accuracy_claim_settles_the_task(game):
    world, task_id, bundle, proposer, _, _ = game
    evaluating(world, task_id, bundle, proposer)
    tasks, samples = world.protocol.tasks, world.protocol.task_params(task_id).evaluation_size
    bond = rounds(world).functions.proposerBond(task_id).call()
    assert world.chain.revert_name(
        proposer, rounds(world), "claimAccuracy", task_id, samples + 1, False, value=bond
    ) == ("RewardManager__BadCount")
    receipt = world.send(proposer, rounds(world), "claimAccuracy", task_id, samples, False, value=bond)
    assert receipt["gasUsed"] < 150_000
    # While it is pending nobody settles the task another way.
    world.let_deadline_pass(task_id)
    assert world.revert_name(world.clients[0], tasks, "settle", task_id) == "RewardManager__AccuracyClaimPending"
    args = (task_id, bytes(32), b"", [], [], bytes(64))
    assert world.revert_name(world.clients[0], tasks, "submitAccuracy", *args) == "RewardManager__AccuracyClaimPending"
    world.travel_to(accuracy_end(world, task_id) + 1)
    receipt = world.send(proposer, rounds(world), "finalizeAccuracy", task_id)
    (proven,) = world.protocol.events_in(receipt, "AccuracyProven")
    assert (proven["args"]["correct"], proven["args"]["targetReached"]) == (samples, True)
    assert world.protocol.task(task_id).status == TaskStatus.COMPLETED
    assert world.balances_add_up()


def test_a_false_accuracy_claim_is_voided_and_the_proof_window_reopens(game):
    world, task_id, bundle, proposer, watcher, _ = game
    evaluating(world, task_id, bundle, proposer)
    bond = rounds(world).functions.proposerBond(task_id).call()
    # The requester's accomplice claims the target missed just before the proof window closes.
    world.travel_to(world.protocol.tasks.functions.evaluationDeadline(task_id).call() - 5)
    world.send(proposer, rounds(world), "claimAccuracy", task_id, 0, False, value=bond)
    challenger_bond = rounds(world).functions.CHALLENGER_BOND().call()
    world.send(watcher, rounds(world), "challengeAccuracy", task_id, value=challenger_bond)
    nonce = rounds(world).functions.accuracyClaim(task_id).call()[2]
    # No proof of another model, or none at all, answers it.
    args = (task_id, watcher.address, bytes(32), b"", [], [], bytes(64))
    assert world.revert_name(proposer, rounds(world), "answerAccuracy", *args) == "RewardManager__WrongModel"
    # Past the proof window the claimer may still answer (the proof is judged, not the clock), so a
    # challenger cannot wait out the window to take an honest claimer's bond.
    world.travel_to(world.protocol.tasks.functions.evaluationDeadline(task_id).call() + 1)
    assert world.revert_name(proposer, rounds(world), "answerAccuracy", *args) == "RewardManager__WrongModel"
    deadline = rounds(world).functions.accuracyDispute(task_id, nonce, watcher.address).call()
    world.travel_to(deadline + 1)
    receipt = world.send(watcher, rounds(world), "timeoutAccuracy", task_id, nonce, watcher.address)
    (reopened,) = world.protocol.events_in(receipt, "ProofWindowReopened")
    assert reopened["args"]["proofDeadline"] > deadline, "a false claim cannot run out the proof window"
    assert rounds(world).functions.creditOf(watcher.address).call() == challenger_bond + bond // 2
    assert world.protocol.task(task_id).status == TaskStatus.EVALUATING
    assert world.revert_name(world.clients[0], world.protocol.tasks, "settle", task_id) == (
        "RewardManager__DeadlineNotPassed"
    )
