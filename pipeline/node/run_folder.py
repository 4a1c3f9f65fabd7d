"""The run folder: everything one task leaves on disk, and the only code that knows its layout.

run.json        configuration, chain id, contract addresses, task id, the demo's keys
federation.json the configuration alone (the simulated clients' data and attacks), no key
store.sqlite    the aggregator's sequencer store (node.store)
models/         the global model of every epoch (epoch-0 is the initial one)
updates/        every client's ONNX model per epoch
rounds/         every epoch's proof folder
task/           the task's public description (node.task_description): what clients are handed
requester/      the requester's private evaluation set, salt and the set's commitments (only the
                salt and the commitments go on chain, at the end)
evaluation.npz  the evaluation set the requester publishes at its reveal, for the provers
accuracy/       the accuracy proof of the final model on that set
report/         report.md, summary.json and the plots
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic
from stakelearn.models.digits import LocalTraining
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.prover.accuracy import AccuracyCircuit
from stakelearn.prover.accuracy_circuit import paired_chunked_circuits, paired_circuits
from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.circuit import PreparedCircuit, RoundCircuit, prepare
from stakelearn.prover.rounds import Round, round_for

RUN_FILE = "run.json"
STORE_FILE = "store.sqlite"
EVALUATION_FILE = "requester/evaluation.npz"
PUBLISHED_EVALUATION_FILE = "evaluation.npz"  # the set the requester publishes when it reveals


def task_dir(out: Path) -> Path:
    return out / "task"


FEDERATION_FILE = "federation.json"  # the demo's simulated clients' data settings (TaskConfig), no key


def load_federation_config(out: Path) -> TaskConfig:
    try:
        return config_from_json(json.loads((out / FEDERATION_FILE).read_text()))
    except FileNotFoundError:
        raise InputError(f"{out} is not a demo run folder ({FEDERATION_FILE} is missing)") from None


def model_path(out: Path, epoch: int) -> Path:
    return out / "models" / f"epoch-{epoch}.npy"


def updates_folder(out: Path, epoch: int) -> Path:
    return out / "updates" / f"epoch-{epoch}"


def round_folder(out: Path, epoch: int) -> Path:
    return out / "rounds" / f"epoch-{epoch}"


def check_new_run_folder(out: Path) -> None:
    """A new run's folder must not exist or be empty. It is refused, never emptied: it may hold
    a run that can still be resumed, or anything else the user keeps there."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not empty: resume it with --resume, or choose another --out")


def load_run(out: Path) -> dict:
    try:
        return json.loads((out / RUN_FILE).read_text())
    except FileNotFoundError:
        raise InputError(
            f"{out} is not a run folder ({RUN_FILE} is missing): `stakelearn demo --out DIR` makes one"
        ) from None


def config_to_json(config: TaskConfig) -> dict:
    return asdict(config)


def config_from_json(data: dict) -> TaskConfig:
    return TaskConfig(
        **{**data, "fixed_point": FixedPoint(**data["fixed_point"]), "training": LocalTraining(**data["training"])}
    )


def task_circuits(config: TaskConfig, inner_cols: int) -> tuple[RoundCircuit | ChunkCircuit, AccuracyCircuit]:
    """The task's round circuit (its chunk circuit when rounds are proven in chunks) and its
    accuracy circuit, at one shared logrows (see paired_circuits, paired_chunked_circuits)."""
    k, max_int = config.krum, config.fixed_point.max_int
    if config.chunk:
        chunk = ChunkCircuit(k.n, k.f, k.m, config.chunk, max_int, inner_cols)
        return paired_chunked_circuits(chunk, config.samples_per_proof, config.classifier)
    round_circuit = RoundCircuit(
        n=k.n, f=k.f, m=k.m, d=config.dimension, max_int=max_int, num_inner_cols=inner_cols, rule=k.rule
    )
    return paired_circuits(round_circuit, config.samples_per_proof, config.classifier)


def run_circuits(run: dict) -> tuple[RoundCircuit | ChunkCircuit, AccuracyCircuit]:
    """The circuits of the run that ``run.json`` describes."""
    return task_circuits(config_from_json(run["config"]), run["inner_cols"])


def run_round(run: dict) -> tuple[Round, PreparedCircuit]:
    """The round of the run that ``run.json`` describes, over the run's circuits (as its task's
    verifiers pin them), and its prepared accuracy circuit: what check_task_verifiers and the
    audit take."""
    round_circuit, accuracy_circuit = run_circuits(run)
    return round_for(round_circuit, config_from_json(run["config"]).dimension), prepare(accuracy_circuit)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_array(path: Path, values: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return write_bytes_atomic(path, buffer.getvalue())
