"""Finding 6 (low): a time-of-check gap in the Flower client. The global model was checked before
training and the epoch read only when signing, so a server could land the current round in the
meantime (the client absent from it) and get a signature for the next epoch over an update
trained on the previous model.

Now the epoch is pinned when the global model is checked (one read of the task's state gives
both), the client signs that epoch only, and its signer refuses once its own node's open epoch
has moved on. On the six-client task, whose rounds may leave one client absent: client 4 trains
while the server lands epoch 1 without it."""

from dataclasses import replace

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

from stakelearn.errors import InputError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol
from stakelearn.pipeline.flower import client
from stakelearn.pipeline.flower.client import EPOCH, stakelearn_mod
from stakelearn.pipeline.node.signer import Signer, SignerRefused, running_signer
from stakelearn.pipeline.node.task_description import model_hash

from ..conftest import ABSENT
from ..flower.helpers import FIXED_POINT, as_arrays, chain_task, context, served, train_message
from .conftest import absent_signatures, use_round

VICTIM = int(np.flatnonzero(ABSENT)[0])  # the client the landed round leaves out
INITIAL = np.zeros(16)


@pytest.fixture
def task_id(absence_world):
    """A task whose initial model is INITIAL (what the clients check), its six clients enrolled."""
    world = absence_world
    params = replace(world.params(), initial_model=model_hash(INITIAL))
    world.send(
        world.requester,
        world.protocol.tasks,
        "createTask",
        params.as_abi(),
        value=world.protocol.base_fee() + params.escrow,
    )
    world.task_id = world.protocol.task_count()
    for account in world.clients:
        world.send(account, world.protocol.tasks, "enroll", world.task_id)
    return world.task_id


@pytest.fixture
def node(absence_world, task_id, monkeypatch, tmp_path):
    """The victim's settings (its node, task folder and signer), the signer's protection file."""
    world = absence_world
    monkeypatch.setattr(
        client,
        "_context_task",
        lambda _task_dir, rpc_url: chain_task(
            rpc_url, world.protocol.tasks.address, task_id, world.prepared, FIXED_POINT
        ),
    )
    with served(world.chain) as url:
        signer = Signer(
            attach_protocol(Chain.rpc(url), {"protocol": world.protocol.tasks.address}),
            world.clients[VICTIM],
            tmp_path / "victim.sqlite",
        )
        with running_signer(signer) as signer_url:
            yield context({"rpc-url": url, "task-dir": str(tmp_path / "task"), "signer-url": signer_url}, {}), signer


def land_epoch_1_without_the_victim(world, task_id, absent_round) -> None:
    use_round(world, absent_round)
    world.travel_to(world.protocol.tasks.functions.commitDeadline(task_id).call() + 1)
    signatures = absent_signatures(world, task_id, 1, ABSENT)
    args = world.round_args(task_id, 1, previous=model_hash(INITIAL), signatures=signatures)
    world.send(world.clients[0], world.protocol.tasks, "submitRound", args)


def test_a_round_landed_during_training_gets_no_signature_for_the_next_epoch(
    absence_world, task_id, node, absent_round, absence_updates
):
    world, (settings, signer) = absence_world, node
    message = train_message(
        RecordDict({"arrays": as_arrays(INITIAL), "config": ConfigRecord({EPOCH: 1, "server-round": 1})})
    )

    def train(msg: Message, _context) -> Message:
        land_epoch_1_without_the_victim(world, task_id, absent_round)  # the server, meanwhile
        assert world.protocol.task(task_id).epochs_run == 1
        metrics = MetricRecord({"num-examples": 10})
        return Message(RecordDict({"arrays": as_arrays(absence_updates[VICTIM]), "metrics": metrics}), reply_to=msg)

    with pytest.raises(SignerRefused, match=f"task {task_id}'s open epoch is 2 on this signer's node, not 1"):
        stakelearn_mod(message, settings, train)
    assert signer.protection.records() == []  # nothing signed, for epoch 1 or 2


def test_a_server_asking_for_another_epoch_than_the_checked_model_opens_is_refused_before_training(
    absence_world, task_id, node
):
    settings, signer = node
    message = train_message(
        RecordDict({"arrays": as_arrays(INITIAL), "config": ConfigRecord({EPOCH: 2, "server-round": 1})})
    )
    with pytest.raises(InputError, match="the server asks for epoch 2, the chain takes epoch 1: not training"):
        stakelearn_mod(message, settings, lambda *_: pytest.fail("trained for an epoch the chain does not take"))
    assert signer.protection.records() == []


def test_the_pinned_epoch_is_signed_when_nothing_moved(absence_world, task_id, node, absence_updates):
    world, (settings, signer) = absence_world, node
    message = train_message(
        RecordDict({"arrays": as_arrays(INITIAL), "config": ConfigRecord({EPOCH: 1, "server-round": 1})})
    )

    def train(msg: Message, _context) -> Message:
        metrics = MetricRecord({"num-examples": 10})
        return Message(RecordDict({"arrays": as_arrays(absence_updates[VICTIM]), "metrics": metrics}), reply_to=msg)

    reply = stakelearn_mod(message, settings, train)
    signed = reply.content[client.COMMITMENT]
    commitment, signature = bytes(signed["commitment"]), bytes(signed["signature"])
    assert world.protocol.recover_signer(task_id, 1, commitment, signature) == world.clients[VICTIM].address
    ((*_, epoch, _, recorded),) = signer.protection.records()
    assert (epoch, recorded) == (1, signature)


def test_an_epoch_tried_again_gets_the_update_committed_to_before(absence_world, task_id, node, absence_updates):
    """No round landed (too many clients were absent, or the ServerApp restarted: a new run) and
    the server asks for the same epoch again: the signer signs one commitment per epoch, so the
    client sends the update it committed to, kept in its task folder, and does not train another."""
    settings, signer = node
    message = train_message(
        RecordDict({"arrays": as_arrays(INITIAL), "config": ConfigRecord({EPOCH: 1, "server-round": 1})})
    )

    def train(msg: Message, _context) -> Message:
        metrics = MetricRecord({"num-examples": 10})
        return Message(RecordDict({"arrays": as_arrays(absence_updates[VICTIM]), "metrics": metrics}), reply_to=msg)

    first = stakelearn_mod(message, settings, train)
    again = train_message(
        RecordDict({"arrays": as_arrays(INITIAL), "config": ConfigRecord({EPOCH: 1, "server-round": 2})})
    )
    restarted = context(dict(settings.node_config), {})  # a new run: a new context, nothing in its state
    second = stakelearn_mod(again, restarted, lambda *_: pytest.fail("trained a second update for epoch 1"))
    assert dict(second.content[client.COMMITMENT]) | {"seconds": 0} == dict(first.content[client.COMMITMENT]) | {
        "seconds": 0
    }
    assert [a.numpy().tolist() for a in second.content["arrays"].values()] == [
        a.numpy().tolist() for a in first.content["arrays"].values()
    ]
    assert second.content["metrics"]["num-examples"] == 10
    assert len(signer.protection.records()) == 1
