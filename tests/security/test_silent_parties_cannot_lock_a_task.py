"""Finding 3: one silent client, an absent aggregator or an absent requester must not freeze a
task. Every state has a deadline after which anyone moves the task on; a round proceeds
without a client that did not commit in time (that client earns nothing for the epoch, and is
not slashed: the chain cannot tell a silent client from one the aggregator left out), and a
client the aggregator tries to pass off as absent is protected by posting its commitment on
chain. These run on the six-client circuit (f = 1, m = 3), whose rounds may leave one client
absent: min(f, n - m - f, n - 2f - 3) = 1."""

import pytest
from web3.logs import DISCARD

from stakelearn.pipeline.contracts.types import TaskStatus

from ..conftest import ABSENT
from ..verifier_contracts.world import EPOCHS, ETHER, FEE, PERIODS
from .conftest import absent_signatures, round_commitments, use_round

YEAR = 365 * 24 * 3600


@pytest.fixture
def world(absence_world):
    return absence_world


def now(world) -> int:
    return world.chain.w3.eth.get_block("latest")["timestamp"]


def absent_round_args(world, task_id, epoch, previous=None):
    return world.round_args(
        task_id, epoch, previous=previous, signatures=absent_signatures(world, task_id, epoch, ABSENT)
    )


def test_round_without_a_silent_client_waits_for_the_commit_window(world, absent_round):
    use_round(world, absent_round)
    task_id = world.start_task()
    tasks = world.protocol.tasks
    assert (
        world.revert_name(world.clients[0], tasks, "submitRound", absent_round_args(world, task_id, 1))
        == "MPSRollup__CommitWindowOpen"
    )
    world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
    receipt = world.send(world.clients[0], tasks, "submitRound", absent_round_args(world, task_id, 1))
    (event,) = tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["absentMask"] == 0b10000
    assert event["args"]["flaggedMask"] & 0b10000 == 0  # absent, not flagged
    assert event["args"]["selectedMask"] & 0b10000 == 0  # never selected
    (absent,) = tasks.events.ClientAbsent().process_receipt(receipt, errors=DISCARD)
    assert absent["args"]["client"] == world.clients[4].address
    unflagged, _, _, absent_epochs = tasks.functions.record(task_id, world.clients[4].address).call()
    assert (unflagged, absent_epochs) == (0, 1)


def test_silent_client_loses_its_reward_but_not_its_stake(world, absent_round):
    """Absent twice in a row: an absence is neither a flag nor a slash (an aggregator could
    otherwise hurt an honest client by leaving it out); it only earns nothing."""
    use_round(world, absent_round)
    task_id = world.start_task()
    tasks, silent = world.protocol.tasks, world.clients[4]
    previous = None
    for epoch in (1, 2):
        world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
        receipt = world.send(world.clients[0], tasks, "submitRound", absent_round_args(world, task_id, epoch, previous))
        previous = world.protocol.task(task_id).global_model
    slashed = tasks.events.ClientSlashed().process_receipt(receipt, errors=DISCARD)
    assert silent.address not in {e["args"]["client"] for e in slashed}
    assert world.protocol.registry.functions.stakeOf(silent.address).call() == ETHER
    assert tasks.functions.record(task_id, silent.address).call() == [0, 0, 0, 2]  # two absences, nothing else
    world.finish(task_id)
    assert world.credits()[4] == 0  # earned nothing
    assert world.balances_add_up()


def test_signed_slot_that_the_circuit_treats_as_absent_is_refused(world, absent_round):
    """A colluder signs the absent commitment (no work) so that its slot looks present on chain
    while the circuit leaves it out of every score: it would be paid for sending nothing."""
    use_round(world, absent_round)
    task_id = world.start_task()
    args = world.round_args(task_id, 1)  # slot 4's absent commitment, signed by client 4
    assert (
        world.revert_name(world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__AbsenceMismatch"
    )


def test_client_that_posted_its_commitment_cannot_be_passed_off_as_absent(world, absent_round):
    """The aggregator drops client 4 although it committed: client 4 posted on chain in time."""
    task_id = world.start_task()
    tasks, victim = world.protocol.tasks, world.clients[4]
    world.send(victim, tasks, "postCommitment", task_id, 1, world.commitments[4])  # the session round's commitment
    use_round(world, absent_round)
    world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
    args = absent_round_args(world, task_id, 1)
    assert world.revert_name(world.clients[0], tasks, "submitRound", args) == "MPSRollup__PostedCommitmentMissing"
    assert world.revert_name(victim, tasks, "postCommitment", task_id, 1, bytes(64)) == "MPSRollup__CommitWindowClosed"


def test_only_enrolled_clients_post_and_only_once(world):
    task_id = world.start_task()
    tasks, stranger = world.protocol.tasks, world.requester
    assert (
        world.revert_name(stranger, tasks, "postCommitment", task_id, 1, world.commitments[0])
        == "MPSRollup__NotEnrolled"
    )
    world.send(world.clients[0], tasks, "postCommitment", task_id, 1, world.commitments[0])
    assert (
        world.revert_name(world.clients[0], tasks, "postCommitment", task_id, 1, world.commitments[1])
        == "MPSRollup__AlreadyPosted"
    )
    # the posted commitment is honoured: the full round with it lands
    world.send(world.clients[1], tasks, "submitRound", world.round_args(task_id, 1))


def test_more_absent_clients_than_allowed_are_refused(world, absent_round):
    task_id = world.start_task()
    tasks = world.protocol.tasks
    vacant = round_commitments(absent_round)[4]
    commitments = [*world.commitments[:3], vacant, vacant, *world.commitments[5:]]
    signatures = world.signatures(task_id, 1)
    signatures[3:5] = [bytes(65), bytes(65)]
    world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
    args = world.round_args(task_id, 1, commitments=commitments, signatures=signatures)
    assert world.revert_name(world.clients[0], tasks, "submitRound", args) == "MPSRollup__TooManyAbsent"


def test_unsigned_slot_must_hold_the_absent_commitment(world):
    """An aggregator cannot slip an unsigned update of its own into a silent client's slot."""
    task_id = world.start_task()
    tasks = world.protocol.tasks
    world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
    signatures = world.signatures(task_id, 1)
    signatures[4] = bytes(65)
    args = world.round_args(task_id, 1, signatures=signatures)
    assert world.revert_name(world.clients[0], tasks, "submitRound", args) == "MPSRollup__NotAbsentCommitment"


def test_absent_aggregator_a_year_later_anyone_cancels_and_stakes_unlock(world):
    task_id = world.start_task()
    tasks, registry = world.protocol.tasks, world.protocol.registry
    for client in world.clients:
        world.send(client, registry, "requestWithdrawal")
    world.travel_to(now(world) + YEAR)
    assert world.protocol.task(task_id).status == TaskStatus.ACTIVE
    world.send(world.clients[0], tasks, "endTraining", task_id)  # a client, not the requester
    assert world.protocol.task(task_id).status == TaskStatus.CANCELLED  # no epoch ran: nothing is owed
    assert tasks.functions.creditOf(world.requester.address).call() == EPOCHS * FEE
    for client in world.clients:
        world.send(client, registry, "withdraw")
    assert world.balances_add_up()


def test_aggregator_gone_after_an_epoch_clients_are_paid_for_it(world):
    task_id = world.start_task()
    tasks = world.protocol.tasks
    world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, 1))
    assert world.revert_name(world.clients[0], tasks, "endTraining", task_id) == "RewardManager__RoundPeriodNotOver"
    world.travel_to(now(world) + PERIODS.round_seconds + 1)
    world.send(world.clients[2], tasks, "endTraining", task_id)
    world.let_deadline_pass(task_id)  # and the requester never reveals: it forfeits
    world.send(world.clients[2], tasks, "settle", task_id)
    assert world.protocol.task(task_id).status == TaskStatus.COMPLETED
    assert sum(world.credits()) > 0.99 * EPOCHS * FEE  # the whole escrow, to the clients that worked
    assert world.credits()[4] == 0 < world.credits()[1]  # the flagged one earns nothing, left-out 1 is paid
    assert world.balances_add_up()


def test_task_that_never_fills_is_cancelled_by_anyone_after_enrollment(world):
    task_id = world.create_task()
    tasks, client = world.protocol.tasks, world.clients[0]
    world.send(client, tasks, "enroll", task_id)
    assert world.revert_name(client, tasks, "cancel", task_id) == "TaskEscrow__EnrollmentOpen"
    world.travel_to(now(world) + PERIODS.enrollment_seconds + 1)
    world.send(client, tasks, "cancel", task_id)
    assert world.protocol.registry.functions.locksOf(client.address).call() == 0
    assert tasks.functions.creditOf(world.requester.address).call() == EPOCHS * FEE


def test_audit_reports_the_skipped_client_and_the_flagged_one(world, absent_round):
    from stakelearn.pipeline.apps.audit import audit_chain

    use_round(world, absent_round)
    task_id = world.start_task()
    tasks = world.protocol.tasks
    previous = None
    for epoch in (1, 2):
        world.travel_to(tasks.functions.commitDeadline(task_id).call() + 1)
        world.send(world.clients[0], tasks, "submitRound", absent_round_args(world, task_id, epoch, previous))
        previous = world.protocol.task(task_id).global_model
    problems, rounds = audit_chain(world.protocol, task_id, (world.round, world.accuracy))
    assert problems == []
    assert [r["absent"] for r in rounds] == [[4], [4]]
    assert all(4 not in r["flagged"] for r in rounds)
    assert [r["slashed"] for r in rounds] == [[], []]  # flags never slash
