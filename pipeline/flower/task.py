"""What the Flower ServerApp and ClientApps share: the posted task as its public description
says and the chain confirms.

A task is posted (``stakelearn task create``, or ``stakelearn demo --setup-only``) and its
clients enrolled beforehand. Both sides attach to it from its task folder
(``node.task_description``: no key in it) through an RPC node of their own, check the folder
against the chain and derive the same round from it; the enrolled clients and the epoch come
from the chain, never from the other side's messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import Protocol, attach_protocol, check_task_verifiers
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.pipeline.node.task_description import check_on_chain, read_task_folder
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import Round


@dataclass(frozen=True)
class ProvenTask:
    protocol: Protocol
    task_id: int
    round: Round  # the task's round over this side's own circuits
    fixed_point: FixedPoint  # the updates' quantization, as the task's circuit takes them

    def clients(self) -> list[str]:
        """The enrolled clients' addresses, in slot order."""
        return list(self.protocol.tasks.functions.clientsOf(self.task_id).call())

    def open_epoch(self) -> int:
        """The epoch whose round the chain takes next; refuses a task that takes no round."""
        state = self.protocol.task(self.task_id)
        if state.status != TaskStatus.ACTIVE:
            raise InputError(f"task {self.task_id} is {state.status.name.lower()}, not active: it takes no round")
        return state.epochs_run + 1

    def model_of(self, aggregate: np.ndarray) -> bytes:
        """What the chain records as the global model a round with this aggregate leaves: the hash
        of the aggregate's commitment (of its chunks' chain, for a task proven in chunks)."""
        return keccak(self.round.aggregate_commitment(np.asarray(aggregate).astype(np.int64)))


def open_task(task_dir: Path, rpc_url: str, check_verifiers: bool = True, chain: Chain | None = None) -> ProvenTask:
    """The task the folder ``task_dir`` describes, on the node at ``rpc_url`` (or ``chain``), after
    checking the folder against the chain (``task_description.check_on_chain``). With
    ``check_verifiers``, the task's verifiers must also be the protocol's code for the folder's
    circuits (what a client checks before it enrolls)."""
    task = read_task_folder(task_dir)
    chain = chain or Chain.rpc(rpc_url)
    protocol = attach_protocol(chain, {"protocol": task.description.protocol})
    check_on_chain(task, protocol)
    round_ = task.round()
    if check_verifiers:
        check_task_verifiers(protocol, task.description.task_id, round_, prepare(task.accuracy_circuit()))
    return ProvenTask(protocol, task.description.task_id, round_, task.description.fixed_point)
