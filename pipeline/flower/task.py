"""What the Flower ServerApp and ClientApps share: the posted task as the chain describes it.

A task is posted and its clients enrolled beforehand (``stakelearn demo --setup-only`` writes its
``run.json``: the protocol's addresses, the task id and the task's configuration). Both sides
attach to it through an RPC node and derive the same circuit from the configuration; the
enrolled clients and the epoch come from the chain, never from the other side's messages.
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
from stakelearn.pipeline.node.run_folder import config_from_json, load_run, task_circuits
from stakelearn.pipeline.node.task_lifecycle import PROTOCOL, evaluate
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import Round, round_for


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


def open_task(run_dir: Path, rpc_url: str, check_verifiers: bool = True, chain: Chain | None = None) -> ProvenTask:
    """The task ``run_dir/run.json`` describes, on the node at ``rpc_url`` (or ``chain``). With
    ``check_verifiers``, the task's verifiers must be the protocol's for this circuit (what a
    client checks before it enrolls)."""
    run = load_run(run_dir)
    chain = chain or Chain.rpc(rpc_url)
    if chain.chain_id != run["chain_id"]:
        raise InputError(f"{run_dir} describes a task on chain id {run['chain_id']}, {chain.name} is {chain.chain_id}")
    config = config_from_json(run["config"])
    round_circuit, accuracy_circuit = task_circuits(config, run["inner_cols"])
    round_ = round_for(round_circuit, config.dimension)
    protocol = attach_protocol(chain, run["addresses"], PROTOCOL)
    if check_verifiers:
        check_task_verifiers(protocol, run["task_id"], round_, prepare(accuracy_circuit))
    return ProvenTask(protocol, run["task_id"], round_, config.fixed_point)


def settle(run_dir: Path, task: ProvenTask, aggregator, aggregate: np.ndarray) -> dict:
    """After the task's last epoch: the requester (the demo's key in ``run.json``) reveals its
    evaluation set, the aggregator proves the accuracy of the last proven ``aggregate`` on it and
    submits the proof, on which the contract pays (``pipeline.node.task_lifecycle.evaluate``)."""
    run = load_run(run_dir)
    _, accuracy_circuit = task_circuits(config_from_json(run["config"]), run["inner_cols"])
    return evaluate(task.protocol, run, aggregator, lambda: aggregate, prepare(accuracy_circuit), run_dir)
