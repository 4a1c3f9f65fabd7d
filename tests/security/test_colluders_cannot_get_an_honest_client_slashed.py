"""Finding 12: the 7.5x flag rule, chosen on seeds 0-4, slashed honest clients on seeds 7-9: f
colluders sending near-equal vectors take the smallest Krum scores and push the reference score
down to the (p - 2f)-th honest one, so an honest client with one-class data becomes the outlier.
No ratio on Krum scores is safe by construction (an honest client's ratio is bounded only by the
honest clients' own spread, which non-IID data leaves unbounded), so a flag now only leaves the
epoch unpaid, and a slash needs a proven violation: two different commitments signed for one
task and epoch, which an honest client's signer never signs."""

from web3.logs import DISCARD

from ..verifier_contracts.world import ETHER


def test_a_client_flagged_in_every_epoch_keeps_its_stake(world):
    """The world flags every score above the reference (1x): client 4 is flagged in all three
    epochs, as a framed honest client would be, and loses only the epochs' pay."""
    task_id = world.start_task()
    tasks = world.protocol.tasks
    for epoch in (1, 2, 3):
        receipt = world.send(world.clients[0], tasks, "submitRound", world.round_args(task_id, epoch))
        assert tasks.events.ClientSlashed().process_receipt(receipt, errors=DISCARD) == ()
        (flag,) = tasks.events.ClientFlagged().process_receipt(receipt, errors=DISCARD)
        assert flag["args"]["client"] == world.clients[4].address
    assert tasks.functions.record(task_id, world.clients[4].address).call() == [0, 3, 0, 0]
    assert world.protocol.registry.functions.stakeOf(world.clients[4].address).call() == ETHER
    world.finish(task_id)
    assert world.credits()[4] == 0 < min(world.credits()[:4])
    assert world.balances_add_up()


def test_one_signature_per_epoch_is_never_a_violation(world):
    """What an honest signer gives: one commitment per epoch, even signed twice (the same
    signature), and commitments for different epochs. None of it can be reported."""
    task_id = world.start_task()
    tasks, client = world.protocol.tasks, world.clients[2]
    sign = world.protocol.sign_update
    same = sign(client, task_id, 1, world.commitments[2])
    for args in (
        (task_id, 1, world.commitments[2], same, world.commitments[2], same),
        (task_id, 1, world.commitments[2], same, world.commitments[3], sign(client, task_id, 2, world.commitments[3])),
    ):
        assert (
            world.revert_name(world.requester, tasks, "reportEquivocation", *args) == "SlashingManager__NotEquivocation"
        )
