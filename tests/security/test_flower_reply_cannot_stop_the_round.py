"""Finding 4 (medium): one reply stopped every round. ``ProvenMultiKrum.aggregate_train`` caught
only some exception types and read reply fields outside its per-reply check, so an empty or
64-byte signature, r = s = 0, an out-of-range integer commitment, a reply without its metrics
record or with a non-numeric field raised out of the strategy, and no round was ever submitted.

Now every reply is checked alone in one place (``strategy.check_reply``): whatever a client
sends, its reply is refused (one line in the log) and its slot is absent, and the round is
proven and submitted without it. On the six-client task, whose rounds may leave one client
absent; the malformed reply is slot 5's, signed by its own signer and then altered."""

import pytest
from flwr.app import RecordDict

from stakelearn.pipeline.flower import ProvenTask
from stakelearn.pipeline.flower.client import COMMITMENT
from stakelearn.pipeline.node.signer import Signer

from ..flower.helpers import FIXED_POINT, signed_reply, strategy_for

SLOT = 5


def set_field(name, value):
    def alter(reply):
        reply.content[COMMITMENT][name] = value

    return alter


def drop_metrics(reply):
    reply.content = RecordDict({k: v for k, v in reply.content.items() if k != "metrics"})


VARIANTS = {
    "empty signature": (set_field("signature", b""), "a commitment of 64 bytes and a signature of 0"),
    "64-byte signature": (None, "a commitment of 64 bytes and a signature of 64"),
    "r = s = 0": (set_field("signature", bytes(64) + bytes([27])), "its signature recovers no signer"),
    "out-of-range integer commitment": (set_field("commitment", 2**70), "its commitment is not a bytes (1180591"),
    "no metrics record": (drop_metrics, "no metrics record"),
    "non-numeric field": (set_field("seconds", "fast"), "its seconds is not a finite number ('fast')"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_malformed_reply_is_refused_and_the_round_is_submitted(
    variant, absence_world, absence_updates, tmp_path, capsys
):
    world = absence_world
    world.task_id = world.start_task()
    task = ProvenTask(world.protocol, world.task_id, world.round, FIXED_POINT)
    signers = [Signer(world.protocol, c, tmp_path / f"signer-{i}.sqlite") for i, c in enumerate(world.clients)]
    replies = [signed_reply(task, s, u, 100 + i) for i, (s, u) in enumerate(zip(signers, absence_updates))]
    alter, reason = VARIANTS[variant]
    if alter is None:  # a 64-byte signature: the signed one without its v
        alter = set_field("signature", bytes(replies[SLOT].content[COMMITMENT]["signature"])[:64])
    alter(replies[SLOT])
    world.travel_to(world.protocol.tasks.functions.commitDeadline(world.task_id).call() + 1)

    arrays, metrics = strategy_for(task, world, tmp_path).aggregate_train(1, replies)

    assert arrays is not None and metrics["absent"] == [SLOT]
    assert SLOT not in metrics["selected"] and SLOT not in metrics["flagged"]
    (event,) = world.protocol.logs("RoundSubmitted", taskId=world.task_id)
    assert event["args"]["absentMask"] == 1 << SLOT
    assert f"ProvenMultiKrum: round 1: refused node {100 + SLOT}: {reason}" in capsys.readouterr().err
