"""Findings 4 and 5: the requester revealed sets no proof can match (empty, one value, label 10)
and paid only the work share; a reveal mined at the deadline left no time to prove. The set is
now committed to by its commitments under the accuracy circuit, whose proof finds a set out of
range itself (which pays the clients the full fee: tests/pipeline/test_demo.py); the reveal must
open the task's commitment, and the proof window starts at the reveal."""

from eth_utils import keccak
from web3.logs import DISCARD

from stakelearn.pipeline.contracts.types import TaskStatus

from ..verifier_contracts.world import (
    EVALUATION_COMMITMENTS,
    EVALUATION_SALT,
    EVALUATION_SET,
    FEE,
    PERIODS,
    REVEALED,
)


def trained_task(world, evaluation):
    task_id = world.start_task(evaluation=evaluation)
    tasks = world.protocol.tasks
    world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, 1))
    world.send(world.requester, tasks, "endTraining", task_id)
    return task_id


def test_a_reveal_must_open_the_tasks_commitment(world):
    """The set is committed by its commitments under the accuracy circuit: a reveal of others
    (a set out of range is proven so by the circuit itself, tests/pipeline/test_demo.py), or of
    the same under another salt, is refused, and the task waits for the right one or forfeits."""
    task_id = trained_task(world, EVALUATION_SET)
    tasks = world.protocol.tasks
    x, labels = EVALUATION_COMMITMENTS
    for salt, revealed in ((EVALUATION_SALT, labels + x), (EVALUATION_SALT, x), (keccak(text="other salt"), REVEALED)):
        assert (
            world.revert_name(world.requester, tasks, "revealEvaluationSet", task_id, salt, revealed)
            == "RewardManager__WrongEvaluationSet"
        )
    receipt = world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
    (event,) = tasks.events.EvaluationSetRevealed().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["setCommitments"] == REVEALED  # what the provers check the published set against


def test_reveal_at_the_deadline_leaves_a_full_proof_window(world):
    task_id = trained_task(world, EVALUATION_SET)
    tasks = world.protocol.tasks
    reveal_deadline = tasks.functions.evaluationDeadline(task_id).call()
    world.travel_to(reveal_deadline - 1)  # the reveal is mined at the deadline
    world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
    proof_deadline = tasks.functions.evaluationDeadline(task_id).call()
    assert proof_deadline >= reveal_deadline + PERIODS.proof_seconds - 1
    world.travel_to(reveal_deadline + PERIODS.proof_seconds // 2)
    assert world.revert_name(world.clients[0], tasks, "settle", task_id) == "RewardManager__DeadlineNotPassed"
    # a prover may still submit: what stops this garbage proof is the model check, not the clock
    args = (task_id, EVALUATION_SALT, b"", [], [], bytes(64))
    assert world.revert_name(world.clients[0], tasks, "submitAccuracy", *args) == "RewardManager__WrongModel"
    assert world.protocol.task(task_id).status == TaskStatus.EVALUATING
    assert (
        world.revert_name(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
        == "RewardManager__AlreadyRevealed"
    )


def test_a_missed_target_returns_nothing_to_the_requester(world):
    """Review: a requester that commits to a provable set with wrong labels (or ends training
    early) always misses the target; if the rest of the fees came back to it, it would pay half.
    The fees of the epochs run are spent either way: the work share to the clients, the rest burnt."""
    task_id = trained_task(world, EVALUATION_SET)
    tasks = world.protocol.tasks
    world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
    world.let_deadline_pass(task_id)  # no proof reaches the target
    world.send(world.clients[0], tasks, "settle", task_id)
    fee_of_the_epoch_run = FEE
    unrun = 2 * FEE  # EPOCHS = 3, one run
    refund = tasks.functions.creditOf(world.requester.address).call()
    assert unrun <= refund < unrun + len(world.clients)  # the unrun epochs and the shares' rounding dust
    assert sum(world.credits()) + tasks.functions.burntHeld().call() + refund - unrun == fee_of_the_epoch_run
    assert world.balances_add_up()
