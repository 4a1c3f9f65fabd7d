"""The public task description: everything a client or an aggregator needs to take part in a
posted task, and no secret. ``stakelearn task create`` writes it as a folder that the requester
hands out (or publishes):

task.json     the chain, the protocol, the task id and its verifiers; the round's circuit and
              the updates' fixed point; the accuracy circuit; the model's layout and hashes
model.onnx    the requester's model, as it was exported (its initializers are the initial model)
initial.npy   the initial parameters: the federated vector, in the layout's order

Nobody has to trust the folder: what it claims is bound to the chain. The task's
``modelSpecHash`` is the hash of the description's terms (:func:`spec_hash`), its
``initialModel`` the hash of ``initial.npy``, its verifiers' code is the protocol's for the
description's circuits (``contracts.protocol.check_task_verifiers``), and :func:`check_on_chain`
compares them all before a client or an aggregator acts on the folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.files import write_json_atomic
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.contracts.types import VERIFICATIONS, Verification
from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.circuit import RoundCircuit
from stakelearn.prover.rounds import Round, round_for

FORMAT = "stakelearn-task/1"
TASK_FILE = "task.json"
MODEL_FILE = "model.onnx"
INITIAL_FILE = "initial.npy"
FILES = (TASK_FILE, MODEL_FILE, INITIAL_FILE)
ROUND_KINDS = {"round": RoundCircuit, "chunk": ChunkCircuit}  # the round's circuit, by the kind of round


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_hash(parameters: np.ndarray) -> bytes:
    """The initial model's on-chain commitment: keccak256 of its float64 parameters."""
    return keccak(np.ascontiguousarray(parameters, dtype="<f8").tobytes())


@dataclass(frozen=True)
class Terms:
    """What the requester asks for and pays, as createTask records it."""

    epochs: int
    fee_per_epoch: int  # wei
    target_accuracy_bps: int
    evaluation_size: int
    verification: str = "eager"  # or "optimistic": rounds proven only when challenged (OptimisticRounds)

    def __post_init__(self) -> None:
        if self.verification not in VERIFICATIONS:
            raise InputError(f"unknown verification {self.verification!r}; choose one of: {', '.join(VERIFICATIONS)}")


@dataclass(frozen=True)
class TaskDescription:
    """A task's public description. ``task_id`` and ``verifiers`` are None until it is posted."""

    chain_id: int
    protocol: str
    round_kind: str  # "round" (one proof) or "chunk" (proven in chunks)
    round_circuit: dict  # the round's (or chunk) circuit's fields
    d: int
    fixed_point: FixedPoint
    accuracy_circuit: dict  # the accuracy circuit's description, as its folder's manifest holds it
    layout: tuple[tuple[str, tuple[int, ...]], ...]  # the federated vector: (name, shape) in order
    model_sha256: str  # of model.onnx
    terms: Terms
    task_id: int | None = None
    verifiers: dict | None = None  # round_verifier, accuracy_verifier

    def __post_init__(self) -> None:
        if self.round_kind not in ROUND_KINDS:
            raise InputError(f"unknown round kind '{self.round_kind}': one of {', '.join(ROUND_KINDS)}")
        if sum(int(np.prod(shape)) for _, shape in self.layout) != self.d:
            raise InputError(f"the layout's arrays hold {self.layout_size} values, the task's vector {self.d}")

    @property
    def layout_size(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.layout)

    def circuit(self) -> RoundCircuit | ChunkCircuit:
        try:
            return ROUND_KINDS[self.round_kind](**self.round_circuit)
        except TypeError as error:  # a field missing or unknown: a folder edited by hand
            raise InputError(
                f"the task's round circuit is not a {self.round_kind} circuit's fields ({error})"
            ) from None

    def round(self, ceremony_srs: Path | None = None) -> Round:
        return round_for(self.circuit(), self.d, ceremony_srs)

    def spec(self) -> dict:
        """The terms a task is created with, without where it lives: what ``modelSpecHash`` binds."""
        return {
            "format": FORMAT,
            "round_kind": self.round_kind,
            "round_circuit": self.round_circuit,
            "d": self.d,
            "fixed_point": asdict(self.fixed_point),
            "accuracy_circuit": self.accuracy_circuit,
            "layout": [[name, list(shape)] for name, shape in self.layout],
            "model_sha256": self.model_sha256,
        }

    def posted(self, task_id: int, verifiers: dict) -> TaskDescription:
        return replace(self, task_id=task_id, verifiers=verifiers)

    def to_json(self) -> dict:
        return {
            **self.spec(),
            "chain_id": self.chain_id,
            "protocol": self.protocol,
            "task_id": self.task_id,
            "verifiers": self.verifiers,
            "terms": asdict(self.terms),
        }

    @classmethod
    def from_json(cls, data: dict) -> TaskDescription:
        if data.get("format") != FORMAT:
            raise InputError(f"not a StakeLearn task description (format {data.get('format')!r}, expected {FORMAT})")
        return cls(
            chain_id=data["chain_id"],
            protocol=data["protocol"],
            round_kind=data["round_kind"],
            round_circuit=data["round_circuit"],
            d=data["d"],
            fixed_point=FixedPoint(**data["fixed_point"]),
            accuracy_circuit=data["accuracy_circuit"],
            layout=tuple((name, tuple(shape)) for name, shape in data["layout"]),
            model_sha256=data["model_sha256"],
            terms=Terms(**data["terms"]),
            task_id=data["task_id"],
            verifiers=data["verifiers"],
        )


def spec_hash(description: TaskDescription) -> bytes:
    """The task's ``modelSpecHash``: keccak256 of its spec's canonical JSON."""
    return keccak(text=json.dumps(description.spec(), sort_keys=True))


@dataclass(frozen=True)
class TaskFolder:
    """A task description and the files beside it, read and checked against each other."""

    path: Path
    description: TaskDescription
    initial: np.ndarray

    @property
    def model_bytes(self) -> bytes:
        return (self.path / MODEL_FILE).read_bytes()

    def round(self, ceremony_srs: Path | None = None) -> Round:
        return self.description.round(ceremony_srs)

    def accuracy_circuit(self):
        """The task's accuracy circuit, as its description names it (an ONNX model's is rebuilt
        from the folder's model.onnx and must match the description field for field)."""
        from stakelearn.prover.accuracy import circuit_of
        from stakelearn.prover.circuit import description_digest

        described = self.description.accuracy_circuit
        manifest = {"circuit": described, "circuit_digest": description_digest(described)}
        try:
            return circuit_of(manifest, self.path)
        except (KeyError, TypeError, AttributeError) as error:  # a folder edited by hand
            raise InputError(f"{self.path / TASK_FILE}: its accuracy circuit is not one ({error!r})") from None


def write_task_folder(folder: Path, description: TaskDescription, model: bytes, initial: np.ndarray) -> None:
    """Write (or update, once posted) the folder; each file atomically, task.json last."""
    from stakelearn.files import write_bytes_atomic
    from stakelearn.pipeline.node.run_folder import save_array

    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / MODEL_FILE, model)
    save_array(folder / INITIAL_FILE, np.asarray(initial, dtype=np.float64))
    write_json_atomic(folder / TASK_FILE, description.to_json())


def read_task_folder(folder: Path) -> TaskFolder:
    """The task folder at ``folder``, its files checked against its description."""
    try:
        data = json.loads((folder / TASK_FILE).read_text())
    except FileNotFoundError:
        raise InputError(
            f"{folder} is not a task folder ({TASK_FILE} is missing): `stakelearn task create` writes one"
        ) from None
    except json.JSONDecodeError as error:
        raise InputError(f"{folder / TASK_FILE}: not JSON ({error})") from None
    try:
        description = TaskDescription.from_json(data)
    except (KeyError, TypeError) as error:
        raise InputError(f"{folder / TASK_FILE}: not a task description ({error!r})") from None
    try:
        model = (folder / MODEL_FILE).read_bytes()
        initial = np.load(folder / INITIAL_FILE, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"{folder}: the task's model files are unreadable ({error})") from None
    if sha256_hex(model) != description.model_sha256:
        raise InputError(f"{folder / MODEL_FILE} is not the model the task describes (its sha256 differs)")
    if initial.shape != (description.d,):
        raise InputError(f"{folder / INITIAL_FILE} holds {initial.shape}, the task's vector is ({description.d},)")
    return TaskFolder(folder, description, initial)


def check_on_chain(task: TaskFolder, protocol) -> None:
    """The posted task on chain is the one the folder describes: its spec hash, initial model,
    verifiers and evaluation size. Raises StakeLearnError naming the first difference."""
    description = task.description
    if description.task_id is None:
        raise InputError(f"{task.path} describes a task not yet posted: `stakelearn task create` posts it")
    if protocol.chain.chain_id != description.chain_id:
        raise InputError(
            f"{task.path} describes a task on chain id {description.chain_id}, the node is chain id "
            f"{protocol.chain.chain_id}"
        )
    if protocol.task_count() < description.task_id:
        raise StakeLearnError(f"protocol {protocol.tasks.address} has no task {description.task_id}")
    params = protocol.task_params(description.task_id)
    differences = {
        "model spec hash": params.model_spec_hash == spec_hash(description),
        "initial model": params.initial_model == model_hash(task.initial),
        "round verifier": params.verifier == description.verifiers["round_verifier"],
        "accuracy verifier": params.accuracy_verifier == description.verifiers["accuracy_verifier"],
        "evaluation size": params.evaluation_size == description.terms.evaluation_size,
        "verification": params.verification == Verification[description.terms.verification.upper()],
    }
    wrong = [name for name, same in differences.items() if not same]
    if wrong:
        raise StakeLearnError(
            f"task {description.task_id} on chain is not the task {task.path} describes: its {', '.join(wrong)} "
            "differ; do not take part"
        )
