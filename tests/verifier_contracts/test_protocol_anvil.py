"""The same end-to-end task on a real node: anvil, started on 127.0.0.1 by the test."""

import pytest
from eth_utils import keccak

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import GAS_MARGIN, TX_GAS, Chain
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.prover.circuit import prepare

from .world import EVALUATION_SECONDS, make_world


@pytest.mark.anvil
def test_task_end_to_end_on_anvil(small_circuit, proven_round, small_accuracy):
    with running_anvil() as node:
        world = make_world(Chain.rpc(node.url), prepare(small_circuit), proven_round, small_accuracy)
        task_id = world.start_task()
        for epoch in (1, 2):
            receipt = world.send(
                world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch)
            )
            # A node's own estimate (with a margin) bounds the gas: a sender need not hold the
            # fee of the 15 M ceiling the embedded chain uses.
            limit = world.chain.transaction(receipt["transactionHash"])["gas"]
            assert receipt["gasUsed"] < limit <= GAS_MARGIN * receipt["gasUsed"] + 50_000 < TX_GAS
        world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
        world.chain.w3.provider.make_request("evm_increaseTime", [EVALUATION_SECONDS + 1])
        world.send(world.clients[1], world.protocol.tasks, "settle", task_id)
        state = world.protocol.task(task_id)
        assert (state.status, state.epochs_run, state.global_model) == (
            TaskStatus.COMPLETED,
            2,
            keccak(world.commitments[-1]),
        )
        assert world.protocol.stake_of(world.clients[4].address) == 10**18  # flagged twice: unpaid, not slashed
        assert world.protocol.credit_of(world.clients[4].address) == 0
        assert world.protocol.credit_of(world.clients[0].address) > 0
        assert world.balances_add_up()
        replay = world.chain.revert_name(
            world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1)
        )
        assert replay == "TaskEscrow__WrongStatus"
    assert node.process.poll() is not None
