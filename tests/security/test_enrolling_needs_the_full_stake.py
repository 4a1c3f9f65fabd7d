"""Finding 8: a slashed client kept enrolling with less than STAKE_AMOUNT. Enrollment now needs
the full stake; a slashed client tops up first."""

from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.federation.rules import PenaltyPolicy
from stakelearn.prover.circuit import prepare

from ..verifier_contracts.world import ETHER, make_world


def test_slashed_client_tops_up_before_it_enrolls_again(small_circuit, proven_round, small_accuracy):
    world = make_world(
        Chain.embedded(),
        prepare(small_circuit),
        proven_round,
        small_accuracy,
        PenaltyPolicy(outlier_bps=10_000),
    )
    tasks, registry, slashed = world.protocol.tasks, world.protocol.registry, world.clients[4]
    task_id = world.start_task()
    world.send(world.requester, tasks, "reportEquivocation", *world.equivocation(slashed, task_id, 1))
    assert registry.functions.stakeOf(slashed.address).call() == ETHER * 8 // 10
    world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, 1))
    world.finish(task_id)

    second = world.create_task()
    assert world.revert_name(slashed, tasks, "enroll", second) == "StakingRegistry__StakeBelowMinimum"
    assert world.revert_name(slashed, registry, "topUp", value=ETHER) == "StakingRegistry__WrongAmount"
    assert world.revert_name(world.clients[0], registry, "topUp", value=1) == "StakingRegistry__NotSlashed"
    world.send(slashed, registry, "topUp", value=ETHER * 2 // 10)
    world.send(slashed, tasks, "enroll", second)
    assert registry.functions.stakeOf(slashed.address).call() == ETHER
    assert world.balances_add_up()
