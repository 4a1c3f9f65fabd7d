"""ProvenMultiKrum in process, on the embedded chain with the suite's small task (n = 5, f = 1,
m = 3; 16 coordinates): replies committed by stakelearn's client side and signed by each
client's signer, a round proven and submitted, and every reply the strategy must refuse refused."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.models.quantize import quantize
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.flower import ProvenMultiKrum, ProvenTask, commit_reply
from stakelearn.pipeline.flower.arrays import from_vector, layout_of, to_vector
from stakelearn.pipeline.flower.client import COMMITMENT, check_global_model
from stakelearn.pipeline.flower.strategy import accepted_replies
from stakelearn.pipeline.node.signer import Signer, SignerRefused
from stakelearn.prover.circuit import prepare

from ..verifier_contracts.world import ETHER, make_world
from .helpers import FIXED_POINT, as_arrays, reply, signed_reply, strategy_for


@pytest.fixture
def world(small_circuit, proven_round, small_accuracy):
    world = make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy)
    world.task_id = world.start_task()
    return world


@pytest.fixture
def task(world):
    return ProvenTask(world.protocol, world.task_id, world.round, FIXED_POINT)


@pytest.fixture
def signers(world, tmp_path):
    """Each client's signer (its key, the chain, its slashing protection), in process."""
    return [Signer(world.protocol, c, tmp_path / f"signer-{i}.sqlite") for i, c in enumerate(world.clients)]


def test_a_round_is_proven_submitted_and_returns_the_proven_mean(world, task, signers, small_updates, tmp_path):
    replies = [signed_reply(task, c, u, 100 + i) for i, (c, u) in enumerate(zip(signers, small_updates))]
    strategy = strategy_for(task, world, tmp_path)
    arrays, metrics = strategy.aggregate_train(1, list(reversed(replies)))  # arrival order does not matter

    reference = krum_round(small_updates, task.round.params)
    assert world.protocol.task(world.task_id).epochs_run == 1
    assert metrics["selected"] == reference.selected == metrics["flower-selected"]
    assert 4 in metrics["flagged"]  # the far update
    slashed = world.protocol.logs("ClientSlashed", taskId=world.task_id)
    addresses = [c.address for c in world.clients]
    assert metrics["slashed"] == sorted(addresses.index(e["args"]["client"]) for e in slashed)
    expected = next_global(reference.total, 3, FIXED_POINT)
    assert np.array_equal(to_vector(arrays), expected)  # equal weights, whatever num-examples says

    # Clients train on the returned model, the one the chain records; not on another the server
    # might send one of them to make its honest update look like an outlier.
    check_global_model(task, arrays)
    other = expected.copy()
    other[0] += 2.0**-FIXED_POINT.scale_bits
    with pytest.raises(InputError, match="a global model that task .* chain does not record"):
        check_global_model(task, from_vector(other, layout_of(arrays)))


def test_a_restarted_server_resumes_from_the_model_the_chain_records(world, task, signers, small_updates, tmp_path):
    initial = np.zeros(16)
    assert strategy_for(task, world, tmp_path).start_model(initial) is initial  # no round yet
    replies = [signed_reply(task, c, u, 100 + i) for i, (c, u) in enumerate(zip(signers, small_updates))]
    arrays, _ = strategy_for(task, world, tmp_path).aggregate_train(1, replies)

    restarted = strategy_for(task, world, tmp_path)  # a new ServerApp on the same work folder
    resumed = restarted.start_model(initial)
    assert np.array_equal(resumed, to_vector(arrays))
    assert np.array_equal(restarted.aggregate, krum_round(small_updates, task.round.params).total)
    check_global_model(task, from_vector(resumed, layout_of(arrays)))  # what its clients will train on

    saved = tmp_path / "rounds" / "aggregate-epoch-001.npy"
    tampered = np.load(saved)
    tampered[0] += 1
    np.save(saved, tampered)
    with pytest.raises(InputError, match="is not the aggregate task .* records for epoch 1"):
        restarted.start_model(initial)
    saved.unlink()
    with pytest.raises(InputError, match="missing or unreadable: start the server with the work folder"):
        restarted.start_model(initial)


def test_an_nnm_task_returns_the_proven_mixed_mean(
    small_circuit, proven_round, small_accuracy, small_updates, tmp_path
):
    """A task created with nearest-neighbour mixing: the strategy proves the NNM round and
    returns its mean (the aggregate over m (n - f)), which the clients accept as the chain's."""
    circuit = replace(small_circuit, rule="nnm-multikrum")
    world = make_world(Chain.embedded(), prepare(circuit), proven_round, small_accuracy)
    world.task_id = world.start_task(aggregation=1)
    task = ProvenTask(world.protocol, world.task_id, world.round, FIXED_POINT)
    signers = [Signer(world.protocol, c, tmp_path / f"signer-{i}.sqlite") for i, c in enumerate(world.clients)]
    replies = [signed_reply(task, c, u, 100 + i) for i, (c, u) in enumerate(zip(signers, small_updates))]
    arrays, metrics = strategy_for(task, world, tmp_path).aggregate_train(1, replies)
    reference = krum_round(small_updates, circuit.params)
    assert world.protocol.task(world.task_id).epochs_run == 1
    assert metrics["selected"] == reference.selected and 4 in metrics["flagged"]
    assert np.array_equal(to_vector(arrays), next_global(reference.total, circuit.params.weight, FIXED_POINT))
    check_global_model(task, arrays)


def test_clients_train_only_on_the_initial_model_the_task_recorded(task, small_updates):
    with pytest.raises(InputError, match="chain does not record"):
        check_global_model(task, as_arrays(small_updates[0]))


@pytest.fixture
def absence(absence_world, tmp_path):
    """The six-client task, whose rounds may leave one client absent: (world, task, signers)."""
    world = absence_world
    world.task_id = world.start_task()
    task = ProvenTask(world.protocol, world.task_id, world.round, FIXED_POINT)
    signers = [Signer(world.protocol, c, tmp_path / f"signer-{i}.sqlite") for i, c in enumerate(world.clients)]
    return world, task, signers


def test_a_round_closes_with_a_client_absent(absence, absence_updates, tmp_path):
    world, task, signers = absence
    replies = [signed_reply(task, c, u, 100 + i) for i, (c, u) in enumerate(zip(signers, absence_updates))]
    del replies[2]  # its node never replied
    world.travel_to(world.protocol.tasks.functions.commitDeadline(world.task_id).call() + 1)
    _, metrics = strategy_for(task, world, tmp_path).aggregate_train(1, replies)
    assert metrics["absent"] == [2] and 2 not in metrics["selected"] and 2 not in metrics["flagged"]
    (event,) = world.protocol.logs("RoundSubmitted", taskId=world.task_id)
    assert event["args"]["absentMask"] == 1 << 2


def test_too_many_absent_clients_leave_the_model_as_it_was(absence, absence_updates, tmp_path):
    world, task, signers = absence
    replies = [signed_reply(task, c, u, 100 + i) for i, (c, u) in enumerate(zip(signers, absence_updates))]
    arrays, metrics = strategy_for(task, world, tmp_path).aggregate_train(1, replies[:4])
    assert arrays is None and metrics["absent"] == [4, 5]
    assert world.protocol.task(world.task_id).epochs_run == 0


def test_replies_that_do_not_hold_are_refused(world, task, signers, small_updates):
    clients, layout = task.clients(), layout_of(as_arrays(np.zeros(16)))
    good = signed_reply(task, signers[0], small_updates[0], 100)

    tampered = signed_reply(task, signers[1], small_updates[1], 101)
    changed = small_updates[1].copy()
    changed[0] += 1
    tampered.content["arrays"] = as_arrays(changed)  # the aggregator (or the wire) swaps the update

    outsider = new_account(world.chain, ETHER)  # staked nowhere, enrolled nowhere
    sent, _ = commit_reply(task, signers[2], 1, as_arrays(small_updates[2]))
    forged = reply(
        RecordDict(
            {
                "arrays": sent,
                "metrics": MetricRecord({"num-examples": 1}),
                COMMITMENT: ConfigRecord(
                    {
                        "commitment": bytes(good.content[COMMITMENT]["commitment"]),
                        "signature": world.protocol.sign_update(outsider, world.task_id, 1, b"\0" * 64),
                    }
                ),
            }
        ),
        102,
    )
    other_epoch = signed_reply(task, signers[3], small_updates[3], 103)
    other_epoch.content[COMMITMENT]["signature"] = world.protocol.sign_update(
        world.clients[3], world.task_id, 2, bytes(other_epoch.content[COMMITMENT]["commitment"])
    )
    twice = signed_reply(task, signers[0], small_updates[0], 104)  # a second node with slot 0's key
    unsigned = reply(RecordDict({"arrays": as_arrays(small_updates[4]), "metrics": MetricRecord({"n": 1})}), 105)
    reshaped = signed_reply(task, signers[4], small_updates[4], 106)
    reshaped.content["arrays"] = ArrayRecord({"w": Array(small_updates[4] / 128.0)})

    accepted, refused = accepted_replies(
        task, 1, clients, layout, [good, tampered, forged, other_epoch, twice, unsigned, reshaped]
    )
    assert sorted(accepted) == [0]
    assert np.array_equal(accepted[0].update, quantize(small_updates[0] / 128.0, FIXED_POINT))
    reasons = "\n".join(refused)
    assert "node 101: slot 1's arrays differ from its signed commitment" in reasons
    assert "node 102: signed by" in reasons and "not an enrolled client" in reasons
    assert "node 103: signed by" in reasons  # signed for epoch 2: recovers to no enrolled client
    assert "node 104: a second reply for slot 0" in reasons
    assert "node 105: no arrays or no signed commitment" in reasons
    assert "node 106: its arrays are not the global model's layout" in reasons


def test_a_client_signs_only_the_epoch_the_chain_takes(world, task, signers, small_updates, tmp_path):
    with pytest.raises(SignerRefused, match="task 1's open epoch is 1 on this signer's node, not 2"):
        commit_reply(task, signers[0], 2, as_arrays(small_updates[0]))
    outsider = Signer(world.protocol, new_account(world.chain, ETHER), tmp_path / "outsider.sqlite")
    with pytest.raises(InputError, match="is not enrolled in task"):
        commit_reply(task, outsider, 1, as_arrays(small_updates[0]))
    with pytest.raises(SignerRefused, match="is not enrolled in task 1"):  # asked directly, the signer refuses too
        outsider.sign(world.task_id, 1, bytes(64))
    with pytest.raises(InputError, match="num_nodes_to_select=4, but task"):
        ProvenMultiKrum(replace(task), world.requester, "unused", num_nodes_to_select=4)
