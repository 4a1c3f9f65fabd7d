"""Findings 4 and 5: the requester revealed sets no proof can match (empty, one value, label 10)
and paid only the work share; a reveal mined at the deadline left no time to prove. A set the
circuit cannot take now pays the clients the full fee at once, and the proof window starts at
the reveal."""

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from stakelearn.models.quantize import FIELD_MODULUS
from stakelearn.pipeline.contracts.protocol import evaluation_commitment
from stakelearn.pipeline.contracts.types import TaskStatus

from ..verifier_contracts.world import EVALUATION_SALT, EVALUATION_VALUES, FEE, PERIODS

UNPROVABLE = {
    "empty": [],
    "one value": [3],
    "label 10": EVALUATION_VALUES[:-1] + [10],
    "pixel 17": [17] + EVALUATION_VALUES[1:],
    "one sample short": EVALUATION_VALUES[64:-1],
}


def trained_task(world, evaluation):
    task_id = world.start_task(evaluation=evaluation)
    tasks = world.protocol.tasks
    world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, 1))
    world.send(world.requester, tasks, "endTraining", task_id)
    return task_id


@pytest.mark.parametrize("name", list(UNPROVABLE))
def test_unprovable_set_pays_the_full_fee(world, name):
    values = UNPROVABLE[name]
    task_id = trained_task(world, evaluation_commitment(EVALUATION_SALT, values))
    tasks = world.protocol.tasks
    receipt = world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, values)
    assert tasks.events.EvaluationSetUnprovable().process_receipt(receipt, errors=DISCARD)
    assert world.protocol.task(task_id).status == TaskStatus.COMPLETED
    assert sum(world.credits()) > 0.99 * FEE  # the full fee of the one epoch run, not half
    assert world.balances_add_up()


def test_a_negative_or_unreduced_pixel_is_unprovable(world):
    """Issue 25: the range check reads x values as signed field elements. The digits' pixel -1
    (committed by the requester as the signed -1, revealed as p - 1: the same word, or the reveal
    would revert WrongEvaluationSet) and a pixel p (0 mod p, but no field element) are refused."""
    tasks = world.protocol.tasks
    negative = [FIELD_MODULUS - 1, *EVALUATION_VALUES[1:]]
    unreduced = [FIELD_MODULUS, *EVALUATION_VALUES[1:]]
    words = b"".join(v.to_bytes(32, "big") for v in unreduced)  # no Python helper encodes p
    commitments = {
        "negative": evaluation_commitment(EVALUATION_SALT, [-1, *EVALUATION_VALUES[1:]]),
        "unreduced": tasks.functions.evaluationCommitment(EVALUATION_SALT, keccak(words)).call(),
    }
    for name, values in (("negative", negative), ("unreduced", unreduced)):
        task_id = trained_task(world, commitments[name])
        receipt = world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, values)
        assert tasks.events.EvaluationSetUnprovable().process_receipt(receipt, errors=DISCARD), name
        assert world.protocol.task(task_id).status == TaskStatus.COMPLETED


def test_reveal_at_the_deadline_leaves_a_full_proof_window(world):
    task_id = trained_task(world, evaluation_commitment(EVALUATION_SALT, EVALUATION_VALUES))
    tasks = world.protocol.tasks
    reveal_deadline = tasks.functions.evaluationDeadline(task_id).call()
    world.travel_to(reveal_deadline - 1)  # the reveal is mined at the deadline
    world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, EVALUATION_VALUES)
    proof_deadline = tasks.functions.evaluationDeadline(task_id).call()
    assert proof_deadline >= reveal_deadline + PERIODS.proof_seconds - 1
    world.travel_to(reveal_deadline + PERIODS.proof_seconds // 2)
    assert world.revert_name(world.clients[0], tasks, "settle", task_id) == "RewardManager__DeadlineNotPassed"
    # a prover may still submit: what stops this garbage proof is the model check, not the clock
    args = (task_id, EVALUATION_SALT, b"", [], [], bytes(64))
    assert world.revert_name(world.clients[0], tasks, "submitAccuracy", *args) == "RewardManager__WrongModel"
    assert world.protocol.task(task_id).status == TaskStatus.EVALUATING
    assert (
        world.revert_name(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, EVALUATION_VALUES)
        == "RewardManager__AlreadyRevealed"
    )


def test_a_missed_target_returns_nothing_to_the_requester(world):
    """Review: a requester that commits to a provable set with wrong labels (or ends training
    early) always misses the target; if the rest of the fees came back to it, it would pay half.
    The fees of the epochs run are spent either way: the work share to the clients, the rest burnt."""
    task_id = trained_task(world, evaluation_commitment(EVALUATION_SALT, EVALUATION_VALUES))
    tasks = world.protocol.tasks
    world.send(world.requester, tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, EVALUATION_VALUES)
    world.let_deadline_pass(task_id)  # no proof reaches the target
    world.send(world.clients[0], tasks, "settle", task_id)
    fee_of_the_epoch_run = FEE
    unrun = 2 * FEE  # EPOCHS = 3, one run
    refund = tasks.functions.creditOf(world.requester.address).call()
    assert unrun <= refund < unrun + len(world.clients)  # the unrun epochs and the shares' rounding dust
    assert sum(world.credits()) + tasks.functions.burntHeld().call() + refund - unrun == fee_of_the_epoch_run
    assert world.balances_add_up()
