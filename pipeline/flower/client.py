"""The client's side on Flower: every train reply leaves as a committed, signed update.

:func:`stakelearn_mod` wraps the ClientApp's train handler. The reply's arrays are quantized to
the task's fixed point and sent as those grid values, so what the server averages is exactly
what the client committed to. The commitment (the KZG commitment the round proof will carry, in
the client's slot) is signed by the client's signer (``stakelearn signer``, beside the
SuperNode), which holds the staked key: the ClientApp's code comes from the run's submitter, so
it holds no key.

A client's trust roots are its own: its chain node, its task and its signer come from the
SuperNode's node config (``rpc-url``, ``task-dir``, ``signer-url``) or its environment
(``STAKELEARN_RPC_URL``, ``STAKELEARN_TASK_DIR``, ``STAKELEARN_SIGNER_URL``), never from what
the server sends (the run config, the message). It trains only on the global model its node
records (``check_global_model``), and that check pins the epoch: the signer signs that epoch
only, and refuses once its own node's open epoch has moved on. The signer signs one commitment
per task and epoch, so when a round for an epoch is tried again (no round landed: too many
clients were absent, or the ServerApp was restarted) the mod sends the update it committed to
before, kept in the client's task folder, instead of training a new one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from stakelearn.errors import InputError
from stakelearn.files import write_json_atomic
from stakelearn.models.quantize import dequantize, quantize
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.pipeline.flower.arrays import Layout, from_vector, layout_of, to_vector
from stakelearn.pipeline.flower.task import ProvenTask, open_task
from stakelearn.pipeline.node.signer import RemoteSigner
from stakelearn.pipeline.node.task_description import model_hash

COMMITMENT = "stakelearn"  # the reply's ConfigRecord with the signed commitment
EPOCH = "stakelearn-epoch"  # the train config's epoch, as the server asks for it
KEPT = "committed"  # in the client's task folder: the update it committed to, per epoch
# A client's own settings: node config key -> environment variable of the SuperNode.
NODE_SETTINGS = {
    "rpc-url": "STAKELEARN_RPC_URL",
    "task-dir": "STAKELEARN_TASK_DIR",
    "signer-url": "STAKELEARN_SIGNER_URL",
}


def node_setting(context: Context, key: str) -> str:
    """A client's own setting: the SuperNode's node config ``key``, else its environment
    variable (``NODE_SETTINGS``); never the run config, which the run's submitter sets. In
    Flower's simulation engine, whose virtual nodes share one environment and whose node config
    holds only the partition, ``STAKELEARN_SIGNER_URL`` may list one URL per ``partition-id``."""
    variable = NODE_SETTINGS[key]
    value = str(context.node_config.get(key, "")) or os.environ.get(variable, "")
    if key == "signer-url" and len(urls := value.split()) > 1:
        partition = context.node_config.get("partition-id")
        if partition is None or not 0 <= int(partition) < len(urls):
            raise InputError(f"{variable} lists {len(urls)} signers, one per partition-id; this node has {partition}")
        value = urls[int(partition)]
    if not value:
        raise InputError(
            f"stakelearn_mod: this SuperNode sets no {key} (node config {key}=..., or {variable}): a client's "
            "chain node, task and signer are its own, never the server's"
        )
    return value


@dataclass(frozen=True)
class ClientSettings:
    """Where a client's trust roots are: its chain node, its task's folder, its signer."""

    rpc_url: str
    task_dir: Path
    signer_url: str

    @classmethod
    def of(cls, context: Context) -> ClientSettings:
        return cls(
            node_setting(context, "rpc-url"),
            Path(node_setting(context, "task-dir")),
            node_setting(context, "signer-url"),
        )


def check_global_model(task: ProvenTask, arrays: ArrayRecord) -> int:
    """The global model the server sent is the one the chain records for the task (its initial
    model, or the proven mean of the last round: the aggregate, weight * 2^s times the mean, with
    weight m, or m (n - f) with NNM, whose commitment's hash the chain holds); the epoch that
    model opens, read in the same call, which is the only epoch the client will sign for this
    update. A server that sent a client another model could make its honest update look like an
    outlier, and have it flagged."""
    vector, state = to_vector(arrays), task.protocol.task(task.task_id)
    if state.status != TaskStatus.ACTIVE:
        raise InputError(f"task {task.task_id} is {state.status.name.lower()}, not active: it takes no round")
    if state.epochs_run == 0:
        recorded = model_hash(vector) == task.protocol.task_params(task.task_id).initial_model
    else:
        aggregate = np.rint(vector * task.round.params.weight * 2.0**task.fixed_point.scale_bits)
        recorded = task.model_of(aggregate) == state.global_model
    if not recorded:
        raise InputError(
            f"the server sent a global model that task {task.task_id}'s chain does not record: not training"
        )
    return state.epochs_run + 1


def commit_update(task: ProvenTask, address: str, arrays: ArrayRecord) -> tuple[ArrayRecord, bytes]:
    """The arrays to send (quantized, as grid values) and the commitment to them in the slot of
    ``address``."""
    clients = task.clients()
    if address not in clients:
        raise InputError(f"{address} is not enrolled in task {task.task_id}: stake and enroll first")
    quantized = quantize(to_vector(arrays), task.fixed_point)
    commitment = task.round.update_commitment(quantized, clients.index(address))
    return from_vector(dequantize(quantized, task.fixed_point), layout_of(arrays)), commitment


def commit_reply(task: ProvenTask, signer, epoch: int, arrays: ArrayRecord) -> tuple[ArrayRecord, ConfigRecord]:
    """The arrays to send (quantized, as grid values) and the commitment to them, signed by
    ``signer`` (a :class:`RemoteSigner`, or anything with ``address`` and ``sign``) for
    ``epoch``, the epoch pinned when the global model was checked."""
    sent, commitment = commit_update(task, signer.address, arrays)
    return sent, ConfigRecord({"commitment": commitment, "signature": signer.sign(task.task_id, epoch, commitment)})


@cache
def _context_task(task_dir: str, rpc_url: str) -> ProvenTask:
    # The client checked the task's verifiers when it enrolled (stakelearn enroll, demo --setup-only).
    return open_task(Path(task_dir), rpc_url, check_verifiers=False)


def client_signer(task: ProvenTask, url: str) -> RemoteSigner:
    """The signer at ``url``, after checking it signs for the task's protocol and chain."""
    signer = RemoteSigner(url)
    identity = signer.identity()
    if (identity.get("chain_id"), identity.get("contract")) != (
        task.protocol.chain.chain_id,
        task.protocol.tasks.address,
    ):
        raise InputError(
            f"the signer at {url} signs for protocol {identity.get('contract')} on chain id {identity.get('chain_id')}, "
            f"not for task {task.task_id}'s protocol {task.protocol.tasks.address} on chain id {task.protocol.chain.chain_id}"
        )
    return signer


def kept_path(task_dir: Path, task: ProvenTask, address: str, epoch: int) -> Path:
    return task_dir / KEPT / f"{address}-task-{task.task_id}-epoch-{epoch:04d}.json"


def kept_update(task_dir: Path, task: ProvenTask, address: str, epoch: int) -> tuple[ArrayRecord, MetricRecord] | None:
    """The update (grid values) and metrics this client committed to for (task, epoch), if any."""
    try:
        kept = json.loads(kept_path(task_dir, task, address, epoch).read_text())
    except FileNotFoundError:
        return None
    if kept["contract"] != task.protocol.tasks.address:
        return None
    layout: Layout = tuple((name, tuple(shape)) for name, shape in kept["layout"])
    vector = np.asarray(kept["update"], dtype=np.float64)
    return from_vector(vector, layout), MetricRecord(kept["metrics"])


def keep_update(
    task_dir: Path, task: ProvenTask, address: str, epoch: int, sent: ArrayRecord, metrics: MetricRecord | None
) -> None:
    """Record the update about to be signed for (task, epoch), before it is signed."""
    record = {
        "contract": task.protocol.tasks.address,
        "task": task.task_id,
        "epoch": epoch,
        "layout": [[name, list(shape)] for name, shape in layout_of(sent)],
        "update": to_vector(sent).tolist(),
        "metrics": dict(metrics or {}),
    }
    write_json_atomic(kept_path(task_dir, task, address, epoch), record)


def stakelearn_mod(msg: Message, context: Context, call_next) -> Message:
    """Flower mod: commit to every train reply and have the client's signer sign it. The task,
    the chain node and the signer are the SuperNode's own (:func:`node_setting`)."""
    if not msg.metadata.message_type.startswith("train") or EPOCH not in msg.content["config"]:
        return call_next(msg, context)  # only what a ProvenMultiKrum server asks for is committed
    settings = ClientSettings.of(context)
    task = _context_task(str(settings.task_dir), settings.rpc_url)
    signer = client_signer(task, settings.signer_url)
    epoch = check_global_model(task, msg.content["arrays"])  # pins the epoch this update is for
    asked = int(msg.content["config"][EPOCH])
    if asked != epoch:
        raise InputError(f"the server asks for epoch {asked}, the chain takes epoch {epoch}: not training")
    kept = kept_update(settings.task_dir, task, signer.address, epoch)
    if kept is not None:  # this epoch tried again: the update committed to, not a new one
        reply = Message(RecordDict({"arrays": kept[0], "metrics": kept[1]}), reply_to=msg)
    else:
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
    started = time.perf_counter()
    sent, commitment = commit_update(task, signer.address, reply.content["arrays"])
    if kept is None:
        keep_update(settings.task_dir, task, signer.address, epoch, sent, reply.content.metric_records.get("metrics"))
    signature = signer.sign(task.task_id, epoch, commitment)
    reply.content["arrays"] = sent
    reply.content[COMMITMENT] = ConfigRecord(
        {"commitment": commitment, "signature": signature, "seconds": time.perf_counter() - started}
    )
    return reply
