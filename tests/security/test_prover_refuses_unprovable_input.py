"""Finding: the prover hung, with no time limit, on an input outside the circuit's lookup table
(the worker sat at near-zero CPU until killed). An input the circuit cannot take is now refused
before proving, with the reason, and every isolated prover step has a time limit."""

import multiprocessing
import multiprocessing.resource_tracker
import os
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from stakelearn.circuits.accuracy import MODEL_LENGTH
from stakelearn.errors import InputError, ProofError
from stakelearn.prover.accuracy import AccuracyCircuit, input_json, prove_accuracy
from stakelearn.prover.inputs import check_input_range
from stakelearn.prover.isolate import run_isolated

CIRCUIT = AccuracyCircuit(samples=32, model_bound=4096, min_logrows=13)  # conftest's SMALL_ACCURACY


def _sleep(seconds: float) -> str:
    """A step that never finishes in time; module-level so that spawn can pickle it."""
    time.sleep(seconds)
    return "woke up"


def child_pids() -> set[int]:
    """This process's live children, as the kernel sees them (not only multiprocessing's list)."""
    tasks = Path(f"/proc/{os.getpid()}/task")
    return {int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()}


@pytest.fixture(scope="module")
def evaluation() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data.astype(np.int64)[: CIRCUIT.samples], data.target.astype(np.int64)[: CIRCUIT.samples]


def test_a_model_beyond_the_bound_is_refused_before_proving(evaluation, tmp_path):
    pixels, labels = evaluation
    model = np.zeros(MODEL_LENGTH, dtype=np.int64)
    model[123] = 10 * CIRCUIT.model_bound  # outside the lookup table: ezkl's prover hangs on it
    start = time.perf_counter()
    with pytest.raises(InputError) as refused:
        prove_accuracy(model, pixels, labels, CIRCUIT, tmp_path / "accuracy")
    assert time.perf_counter() - start < 5  # refused, not proven
    message = str(refused.value)
    assert "model" in message and "123" in message and "40960" in message and "-4096..4096" in message
    assert "\n" not in message
    assert not (tmp_path / "accuracy").exists()


@pytest.mark.parametrize(
    "part, position, value, allowed",
    [
        (0, 7, -4097, "-4096..4096"),  # model
        # The set's values: a pixel 17 or a label 10 is proven out of range by the circuit
        # (range_error); only values beyond its lookup's reach cannot be proven either way.
        (1, 70, 73, "-56..72"),  # pixels
        (1, 0, -57, "-56..72"),
        (2, 31, 37, "-27..36"),  # labels
        (2, 3, 2.5, "-27..36"),  # not an integer: ezkl would round it at scale 0
    ],
)
def test_every_value_is_checked_against_its_inputs_range(evaluation, part, position, value, allowed):
    pixels, labels = evaluation
    data = input_json(np.zeros(MODEL_LENGTH, dtype=np.int64), pixels, labels)
    check_input_range(data, CIRCUIT.input_bounds(), CIRCUIT.input_names)  # the honest input passes
    data["input_data"][part][position] = value
    with pytest.raises(InputError) as refused:
        check_input_range(data, CIRCUIT.input_bounds(), CIRCUIT.input_names)
    message = str(refused.value)
    assert CIRCUIT.input_names[part] in message and f"[{position}]" in message and str(value) in message
    assert allowed in message


def test_an_input_file_with_the_wrong_number_of_inputs_is_refused(evaluation):
    data = input_json(np.zeros(MODEL_LENGTH, dtype=np.int64), *evaluation)
    data["input_data"].pop()
    with pytest.raises(InputError, match="3 inputs"):
        check_input_range(data, CIRCUIT.input_bounds(), CIRCUIT.input_names)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_step_over_its_time_limit_is_stopped(how, monkeypatch):
    multiprocessing.resource_tracker.ensure_running()  # spawn's helper, alive for the whole session
    before, pids_before = set(multiprocessing.active_children()), child_pids()
    kwargs = {"timeout": 1.0} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv("STAKELEARN_STEP_TIMEOUT", "1")
    start = time.perf_counter()
    with pytest.raises(ProofError) as stopped:
        run_isolated("sleeping step", _sleep, 600, **kwargs)
    assert time.perf_counter() - start < 10
    message = str(stopped.value)
    assert "sleeping step" in message and "1 s" in message and "STAKELEARN_STEP_TIMEOUT" in message
    assert "\n" not in message
    assert set(multiprocessing.active_children()) <= before  # the child was stopped, not left behind
    assert child_pids() <= pids_before


def test_a_step_within_its_time_limit_returns_its_result():
    result, stats = run_isolated("short step", _sleep, 0.1, timeout=60)
    assert result == "woke up" and stats.seconds < 60


def test_a_bad_time_limit_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("STAKELEARN_STEP_TIMEOUT", "an hour")
    with pytest.raises(InputError, match="STAKELEARN_STEP_TIMEOUT"):
        run_isolated("any step", _sleep, 0)


@pytest.mark.slow
def test_the_real_hang_is_stopped_by_the_time_limit(evaluation, small_accuracy, tmp_path):
    """ezkl's prover itself, on a witness whose model is outside the lookup table."""
    from stakelearn.files import write_json_atomic
    from stakelearn.prover import steps

    model = np.zeros(MODEL_LENGTH, dtype=np.int64)
    model[0] = 10 * CIRCUIT.model_bound
    write_json_atomic(tmp_path / steps.INPUT, input_json(model, *evaluation))
    steps.gen_witness(tmp_path / steps.INPUT, small_accuracy.compiled, tmp_path / steps.WITNESS)
    with pytest.raises(ProofError, match="exceeded"):
        run_isolated(
            "proving an unprovable witness",
            steps.prove,
            tmp_path / steps.WITNESS,
            small_accuracy.compiled,
            small_accuracy.pk,
            tmp_path / steps.PROOF,
            small_accuracy.srs.path,
            timeout=30,
        )
