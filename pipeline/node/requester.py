"""The requester's steps: prepare and post a task (with a salted commitment to its private
evaluation set), and after training reveal that set on chain so the final model's accuracy can be
proven."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.files import write_bytes_atomic
from stakelearn.models.digits import initial_parameters
from stakelearn.pipeline.contracts.protocol import Protocol, evaluation_commitment
from stakelearn.pipeline.contracts.types import TaskParams
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.pipeline.node.run_folder import EVALUATION_FILE, model_path, npz_bytes, save_array
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


def keep_evaluation_set(pixels: np.ndarray, labels: np.ndarray, secret: Path) -> bytes:
    """Keep the evaluation set in ``secret`` (.npz: pixels, labels, salt) with a fresh salt, which
    hides the set (it may be guessable: public data) until it is revealed; the commitment to it."""
    salt = os.urandom(32)
    write_bytes_atomic(secret, npz_bytes(pixels=pixels, labels=labels, salt=np.frombuffer(salt, np.uint8)))
    return evaluation_commitment(salt, evaluation_values(pixels, labels))


def prepare_task(
    protocol: Protocol,
    config: TaskConfig,
    circuit: RoundCircuit,
    evaluation: tuple[np.ndarray, np.ndarray],
    out: Path,
    fee_per_epoch: int,
) -> TaskParams:
    """What the requester asks for: the initial model (saved as the run folder's epoch 0), its
    ``evaluation`` set (pixels, labels) kept secret in the run folder, and the parameters of
    ``createTask`` naming both, the circuit and the protocol's verifiers."""
    initial = initial_parameters(config.hidden, config.seed)
    save_array(model_path(out, 0), initial)
    pixels, labels = evaluation
    evaluation_set = keep_evaluation_set(pixels, labels, out / EVALUATION_FILE)
    k = config.krum
    return TaskParams(
        model_spec_hash=model_spec_hash(config, circuit),
        n=k.n,
        f=k.f,
        m=k.m,
        aggregation=k.rule_id,
        desired_accuracy_bps=round(config.target_accuracy * 10_000),
        max_epochs=config.epochs,
        fee_per_epoch=fee_per_epoch,
        verifier=protocol.round_verifier.contract.address,
        initial_model=model_hash(initial),
        evaluation_set=evaluation_set,
        evaluation_size=len(labels),
        accuracy_verifier=protocol.accuracy_verifier.address,
    )


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
