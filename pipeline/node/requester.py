"""The requester's steps: post a task (with a salted commitment to its private evaluation set),
and after training reveal that set on chain so the final model's accuracy can be proven."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.pipeline.contracts.protocol import Protocol
from stakelearn.pipeline.contracts.types import TaskParams
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.prover.accuracy import evaluation_values
from stakelearn.prover.circuit import RoundCircuit


def model_spec_hash(config: TaskConfig, circuit: RoundCircuit) -> bytes:
    """What the requester asks for: the model, its fixed point, the data set and the circuit."""
    spec = {
        "model": "digits-softmax",
        "hidden": config.hidden,
        "fixed_point": asdict(config.fixed_point),
        "data": "sklearn.datasets.load_digits",
        "circuit": circuit.digest,
    }
    return keccak(text=json.dumps(spec, sort_keys=True))


def model_hash(parameters: np.ndarray) -> bytes:
    """The initial model's on-chain commitment: keccak256 of its float64 parameters."""
    return keccak(np.ascontiguousarray(parameters, dtype="<f8").tobytes())


def post_task(protocol: Protocol, account, params: TaskParams) -> int:
    """Create the task, paying the base fee and escrowing its fees; return its id."""
    receipt = protocol.execute(account, "createTask", params.as_abi(), value=protocol.base_fee() + params.escrow)
    (created,) = protocol.events_in(receipt, "TaskCreated")
    return created["args"]["taskId"]


def reveal_evaluation_set(protocol: Protocol, account, task_id: int, secret: Path) -> None:
    """Reveal the evaluation set and salt kept in ``secret`` (.npz: pixels, labels, salt)."""
    with np.load(secret) as kept:
        salt, values = kept["salt"].tobytes(), evaluation_values(kept["pixels"], kept["labels"])
    protocol.execute(account, "revealEvaluationSet", task_id, salt, values)


def revealed_evaluation_set(protocol: Protocol, task_id: int) -> tuple[bytes, list[int]] | None:
    """The salt and values a requester revealed on chain (read from the reveal's calldata)."""
    logs = protocol.logs("EvaluationSetRevealed", taskId=task_id)
    if not logs:
        return None
    _, call = protocol.tasks.decode_function_input(protocol.chain.transaction(logs[0]["transactionHash"])["input"])
    return bytes(call["salt"]), list(call["values"])
