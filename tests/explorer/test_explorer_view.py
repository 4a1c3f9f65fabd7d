"""The explorer's figures (pipeline.explorer.view), from the chain alone: flags are the scores
over the flag ratio, stakes are rebuilt from the registry's events, an optimistic claim is shown
as its epoch's claimed row, pending with its time left, and then as a final epoch, and a settled
task shows what it paid."""

from stakelearn.pipeline.contracts.optimistic import Bundle, finalize, propose
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.pipeline.explorer.view import score_ratios, stake_series

from ..verifier_contracts.world import INITIAL_MODEL
from .conftest import view_of


def test_score_ratios_are_over_the_reference_of_the_present_clients():
    # p = 4 present, f = 1: the reference is the 3rd smallest present score, 30.
    assert score_ratios([10, 30, 20, 999, 600], absent=[3], f=1) == [10 / 30, 1.0, 20 / 30, None, 20.0]


def test_stakes_are_summed_per_client_up_to_each_block():
    changes = [(1, "a", 100), (1, "b", 100), (5, "b", -20), (9, "a", 50)]
    assert stake_series(changes, ["a", "b"], [2, 5, 9]) == [[100, 100, 150], [100, 80, 80]]


def test_flags_are_the_scores_over_the_flag_ratio_and_stakes_are_the_registrys(explored):
    world, task_id = explored
    view = view_of(world, task_id)
    for epoch in view["epochs"]:
        over = [i for i, r in enumerate(epoch["ratios"]) if r is not None and r > view["flag_ratio"]]
        assert epoch["flagged"] == over == [4]
    final = [int(series[-1]) for series in view["stakes"]["wei"]]
    assert final == [world.protocol.stake_of(c.address) for c in world.clients]
    assert final[4] < final[0] == ETHER, "the equivocating client alone lost stake"
    assert view["parties"]["aggregators"] == [world.clients[0].address]  # who sent the rounds
    assert view["settlement"] is None and view["problems"] == []


def test_a_settled_task_shows_its_payout(explored):
    world, task_id = explored
    world.finish(task_id)  # no accuracy proof: settled after the deadline
    settlement = view_of(world, task_id)["settlement"]
    assert "correct" not in settlement
    assert int(settlement["rewarded"]) + int(settlement["refunded"]) + int(settlement["burnt"]) > 0


def test_an_optimistic_claim_is_pending_with_its_time_left_then_final(world):
    task_id = world.start_task(verification=1)
    bundle = Bundle(world.round, world.proof_json.parent)
    proposer = new_account(world.chain, 10 * ETHER)
    claim = bundle.claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))
    _, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")

    pending = view_of(world, task_id)
    (shown,) = pending["claims"]
    assert shown["state"] == "pending" and shown["proposer"] == proposer.address
    assert shown["seconds_left"] == shown["window_ends"] - world.chain.now() > 0
    (row,) = pending["epochs"]  # the claimed epoch's row, marked as such: nothing is recorded yet
    assert row["claimed"] and row["verification"]["state"] == "pending" and row["flagged"] == [4]
    assert world.protocol.task(task_id).epochs_run == 0

    world.travel_to(shown["window_ends"] + 1)
    receipt = finalize(world.protocol, world.clients[0], claim, outcome)
    final = view_of(world, task_id)
    assert final["claims"][0]["state"] == "final" and final["claims"][0]["seconds_left"] is None
    (epoch,) = final["epochs"]
    assert "claimed" not in epoch and epoch["verification"] == {"state": "final", "challenges": 0}
    assert epoch["flagged"] == [4] and epoch["scores"] == [str(s) for s in claim.scores]
    assert epoch["gas"] > receipt["gasUsed"], "the claim's gas and the finalizing transaction's"


def test_an_accuracy_claim_is_shown_in_its_window_then_as_the_settlement(world):
    from ..verifier_contracts.world import EVALUATION_SALT, REVEALED

    task_id = world.start_task(verification=1, epochs=1)
    bundle = Bundle(world.round, world.proof_json.parent)
    proposer = new_account(world.chain, 10 * ETHER)
    claim = bundle.claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))
    _, outcome, _ = propose(world.protocol, proposer, claim, "file:///bundle")
    world.travel_to(world.protocol.rounds.functions.pending(task_id).call()[3] + 1)
    finalize(world.protocol, proposer, claim, outcome)
    world.send(world.requester, world.protocol.tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
    rounds, samples = world.protocol.rounds, world.protocol.task_params(task_id).evaluation_size
    bond = rounds.functions.proposerBond(task_id).call()
    world.send(proposer, rounds, "claimAccuracy", task_id, samples - 1, False, value=bond)

    claimed = view_of(world, task_id)
    assert claimed["settlement"] is None
    assert claimed["accuracy_claim"]["state"] == "pending" and claimed["accuracy_claim"]["correct"] == samples - 1
    assert claimed["accuracy_claim"]["seconds_left"] > 0

    world.travel_to(claimed["accuracy_claim"]["window_ends"] + 1)
    world.send(proposer, rounds, "finalizeAccuracy", task_id)
    settled = view_of(world, task_id)
    assert settled["accuracy_claim"] is None and settled["status"] == "completed"
    assert settled["settlement"]["how"] == "claimed, final after its window"
    assert (settled["settlement"]["correct"], settled["settlement"]["samples"]) == (samples - 1, samples)
