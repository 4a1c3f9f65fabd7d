"""Logs are read as a public node requires: from the protocol's deployment block, in bounded
slices, and the slices add up to the whole history."""

from __future__ import annotations

from stakelearn.pipeline.chain import gateway


def test_logs_start_at_the_deployment_block_and_come_in_bounded_slices(world, monkeypatch):
    task_id = world.start_task()
    protocol = world.protocol
    assert 0 < protocol.deployment_block < world.chain.w3.eth.block_number
    whole = protocol.logs("ClientEnrolled", taskId=task_id)
    assert [e["args"]["client"] for e in whole] == [c.address for c in world.clients]

    asked = []
    event = protocol.tasks.events.ClientEnrolled

    class Recording:  # the event, noting each block range asked for
        def get_logs(self, from_block, to_block, argument_filters):
            asked.append((from_block, to_block))
            return event().get_logs(from_block=from_block, to_block=to_block, argument_filters=argument_filters)

    monkeypatch.setattr(gateway, "LOG_BLOCK_RANGE", 2)
    assert world.chain.logs(Recording, protocol.deployment_block, taskId=task_id) == whole
    assert asked[0][0] == protocol.deployment_block and asked[-1][1] == world.chain.w3.eth.block_number
    assert len(asked) > 1 and all(end - start < 2 for start, end in asked)
    assert all(next_start == end + 1 for (_, end), (next_start, _) in zip(asked, asked[1:]))
