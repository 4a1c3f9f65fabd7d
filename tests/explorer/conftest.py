"""A task with two eager rounds on the embedded EVM: client 4 (the far update) is flagged in both
and slashed for equivocating in epoch 1; the others keep their stakes."""

import pytest

from stakelearn.pipeline.explorer.view import audited, task_view


def land_round(world, task_id, epoch):
    return world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch))


@pytest.fixture
def explored(world):
    task_id = world.start_task()
    land_round(world, task_id, 1)
    world.send(
        world.requester, world.protocol.tasks, "reportEquivocation", *world.equivocation(world.clients[4], task_id, 1)
    )
    land_round(world, task_id, 2)
    return world, task_id


def view_of(world, task_id):
    return task_view(world.protocol, task_id, audited(world.protocol, task_id))
