"""The client's side on Flower: every train reply leaves as a committed, signed update.

:func:`stakelearn_mod` wraps the ClientApp's train handler. The reply's arrays are quantized to
the task's fixed point and sent as those grid values, so what the server averages is exactly
what the client committed to. The commitment (the KZG commitment the round proof will carry, in
the client's slot) is signed with the client's staked key for (chain, protocol, task, epoch).
The client reads its slot and the open epoch from the chain, not from the server's message: a
server asking for another epoch gets an error reply, not a signature it could replay later. It
trains only on the global model the chain records (``check_global_model``).
"""

from __future__ import annotations

import os
import time
from functools import cache
from pathlib import Path

import numpy as np
from eth_account import Account
from flwr.app import ArrayRecord, ConfigRecord, Context, Message

from stakelearn.errors import InputError
from stakelearn.models.quantize import dequantize, quantize
from stakelearn.pipeline.flower.arrays import from_vector, layout_of, to_vector
from stakelearn.pipeline.flower.task import ProvenTask, open_task
from stakelearn.pipeline.node.client import update_commitment
from stakelearn.pipeline.node.requester import model_hash
from stakelearn.pipeline.node.run_folder import load_run

COMMITMENT = "stakelearn"  # the reply's ConfigRecord with the signed commitment
EPOCH = "stakelearn-epoch"  # the train config's epoch, as the server asks for it


def commit_reply(task: ProvenTask, account, asked_epoch: int, arrays: ArrayRecord) -> tuple[ArrayRecord, ConfigRecord]:
    """The arrays to send (quantized, as grid values) and the signed commitment to them."""
    epoch = task.open_epoch()
    if asked_epoch != epoch:
        raise InputError(f"the server asks for epoch {asked_epoch}, the chain takes epoch {epoch}: not signing")
    clients = task.clients()
    if account.address not in clients:
        raise InputError(f"{account.address} is not enrolled in task {task.task_id}: stake and enroll first")
    quantized = quantize(to_vector(arrays), task.fixed_point)
    commitment = update_commitment(quantized, clients.index(account.address), task.prepared)
    signature = task.protocol.sign_update(account, task.task_id, epoch, commitment)
    sent = from_vector(dequantize(quantized, task.fixed_point), layout_of(arrays))
    return sent, ConfigRecord({"commitment": commitment, "signature": signature})


def check_global_model(task: ProvenTask, arrays: ArrayRecord) -> None:
    """The global model the server sent is the one the chain records for the task: its initial
    model, or the proven mean of the last round (the aggregate, weight * 2^s times the mean, with
    weight m, or m (n - f) with NNM, whose commitment's hash the chain holds). A server that sent
    a client another model could make its honest update look like an outlier, and have it
    flagged and slashed."""
    vector, state = to_vector(arrays), task.protocol.task(task.task_id)
    if state.epochs_run == 0:
        recorded = model_hash(vector) == task.protocol.task_params(task.task_id).initial_model
    else:
        aggregate = np.rint(vector * task.prepared.circuit.params.weight * 2.0**task.fixed_point.scale_bits)
        recorded = task.model_of(aggregate) == state.global_model
    if not recorded:
        raise InputError(
            f"the server sent a global model that task {task.task_id}'s chain does not record: not training"
        )


@cache
def _context_task(run_dir: str, rpc_url: str) -> ProvenTask:
    # The client checked the task's verifiers when it enrolled (stakelearn enroll, demo --setup-only).
    return open_task(Path(run_dir), rpc_url, check_verifiers=False)


def context_key(context: Context) -> object:
    """The client's key: from the environment variable the node config's ``key-env`` names, or
    for the example's demo task, the demo key of its ``partition-id`` in ``run.json``."""
    if "key-env" in context.node_config:
        name = str(context.node_config["key-env"])
        if name not in os.environ:
            raise InputError(f"the node config names key-env {name}, which is not set")
        return Account.from_key(os.environ[name])
    keys = load_run(Path(str(context.run_config["run-dir"])))["keys"]["clients"]
    return Account.from_key(keys[int(context.node_config["partition-id"])])


def stakelearn_mod(msg: Message, context: Context, call_next) -> Message:
    """Flower mod: commit to and sign every train reply. The run config names the task
    (``run-dir``: its run.json; ``rpc-url``: a node of its chain)."""
    if not msg.metadata.message_type.startswith("train") or EPOCH not in msg.content["config"]:
        return call_next(msg, context)  # only what a ProvenMultiKrum server asks for is committed
    task = _context_task(str(context.run_config["run-dir"]), str(context.run_config["rpc-url"]))
    check_global_model(task, msg.content["arrays"])
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    asked, started = int(msg.content["config"][EPOCH]), time.perf_counter()
    sent, signed = commit_reply(task, context_key(context), asked, reply.content["arrays"])
    signed["seconds"] = time.perf_counter() - started  # what committing and signing cost this client
    reply.content["arrays"] = sent
    reply.content[COMMITMENT] = signed
    return reply
