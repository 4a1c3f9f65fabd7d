"""Finding 5: postCommitment did not name its epoch. A post mined after the aggregator landed the
round became the next epoch's commitment, could not be replaced (AlreadyPosted), and forced the
stale update into the next round. A post now names the epoch it is for, which must be the open one."""


def test_a_post_mined_after_its_round_is_refused(world):
    task_id = world.start_task()
    tasks, late = world.protocol.tasks, world.clients[1]
    world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, 1))  # lands first
    assert world.revert_name(late, tasks, "postCommitment", task_id, 1, world.commitments[1]) == "MPSRollup__WrongEpoch"
    assert tasks.functions.postedCommitment(task_id, 2, 1).call() == bytes(32)  # epoch 2 stays free
    world.send(late, tasks, "postCommitment", task_id, 2, world.commitments[1])  # its epoch-2 update, named so


def test_a_post_for_a_later_epoch_is_refused(world):
    task_id = world.start_task()
    tasks = world.protocol.tasks
    for epoch in (0, 2, 3):
        assert (
            world.revert_name(world.clients[0], tasks, "postCommitment", task_id, epoch, world.commitments[0])
            == "MPSRollup__WrongEpoch"
        )
