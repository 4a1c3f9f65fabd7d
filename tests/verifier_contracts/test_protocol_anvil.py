"""The same end-to-end task on a real node: anvil, started on 127.0.0.1 by the test."""

import pytest
from eth_utils import keccak

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.prover.circuit import prepare

from .world import EVALUATION_SECONDS, make_world


@pytest.mark.anvil
def test_task_end_to_end_on_anvil(small_circuit, proven_round, small_accuracy):
    with running_anvil() as node:
        world = make_world(Chain.rpc(node.url), prepare(small_circuit), proven_round, small_accuracy)
        task_id = world.start_task()
        for epoch in (1, 2):
            world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch))
        world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
        world.chain.w3.provider.make_request("evm_increaseTime", [EVALUATION_SECONDS + 1])
        world.send(world.clients[1], world.protocol.tasks, "settle", task_id)
        _, status, epochs_run, _, model, _ = world.protocol.tasks.functions.task(task_id).call()
        assert (status, epochs_run, model) == (3, 2, keccak(world.commitments[-1]))
        assert world.protocol.registry.functions.stakeOf(world.clients[4].address).call() < 10**18  # slashed
        assert world.protocol.tasks.functions.creditOf(world.clients[0].address).call() > 0
        assert world.balances_add_up()
        replay = world.chain.revert_name(
            world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1)
        )
        assert replay == "TaskEscrow__WrongStatus"
    assert node.process.poll() is not None
