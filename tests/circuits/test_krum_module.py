"""The circuit computes exactly what the numpy reference computes."""

import json

import numpy as np
import pytest
import torch

from stakelearn.circuits.krum import KrumParams, absent_distance, krum_round, tagged_inputs
from stakelearn.circuits.krum_module import MultiKrumRound, split_outputs
from stakelearn.circuits.nnm_module import NnmMultiKrumRound
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import RoundCircuit, input_json, model_dir
from stakelearn.prover.round import public_outputs

SHAPES = [(5, 1, 3, 8), (6, 1, 2, 12), (7, 2, 3, 5), (9, 3, 6, 10)]


def absent_last(n: int, count: int) -> np.ndarray:
    return np.arange(n) >= n - count


ROUND_MODULES = {"multikrum": MultiKrumRound, "nnm-multikrum": NnmMultiKrumRound}


@pytest.mark.parametrize("n, f, m, d", SHAPES)
@pytest.mark.parametrize("absent", [0, 1])
@pytest.mark.parametrize("rule", list(ROUND_MODULES))
def test_torch_module_matches_reference(n, f, m, d, absent, rule):
    params = KrumParams(n=n, f=f, m=m, rule=rule)
    x = np.random.default_rng(n * d).integers(-128, 129, size=(n, d))
    gone = absent_last(n, min(absent, params.allowed_absent))
    x[gone] = 0
    big = absent_distance(params, d, 128)
    reference = krum_round(x, params, gone, big)
    inputs = [torch.tensor(row, dtype=torch.float64) for row in [*tagged_inputs(x, gone), reference.total]]
    out = ROUND_MODULES[rule](params, big, 128).double()(*inputs).numpy().astype(np.int64).tolist()
    parts = split_outputs(out, n)
    assert parts["scores"] == reference.scores.tolist()
    assert parts["mask"] == reference.mask.astype(int).tolist()
    assert parts["check_error"] == 0
    assert parts["absent"] == gone.astype(int).tolist()
    assert not reference.mask[gone].any()


@pytest.mark.parametrize("n, f, m, d", SHAPES)
def test_circuit_witness_matches_reference_exactly(n, f, m, d, tmp_path):
    circuit = RoundCircuit(n=n, f=f, m=m, d=d, max_int=128, num_inner_cols=4)
    x = np.random.default_rng(n + d).integers(-128, 129, size=(n, d))
    x[0] = x[1]  # equal updates: equal scores exercise the tie-break
    gone = absent_last(n, circuit.params.allowed_absent)  # the most absent clients a round tolerates
    x[gone] = 0
    reference = krum_round(x, circuit.params, gone, circuit.absent_distance)
    folder = model_dir(circuit)
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(x, gone), reference.total))
    witness = steps.gen_witness(tmp_path / steps.INPUT, folder / steps.COMPILED, tmp_path / steps.WITNESS)
    parts = public_outputs(witness["outputs"][0], n)
    assert parts["scores"] == reference.scores.tolist()
    assert parts["mask"] == reference.mask.astype(int).tolist()
    assert parts["check_error"] == 0


def witness_check_error(circuit, tagged, claimed, tmp_path) -> int:
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged, claimed))
    witness = steps.gen_witness(tmp_path / steps.INPUT, model_dir(circuit) / steps.COMPILED, tmp_path / steps.WITNESS)
    return public_outputs(witness["outputs"][0], circuit.n)["check_error"]


def test_circuit_reports_a_wrong_claimed_sum(tmp_path):
    circuit = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128, num_inner_cols=4)
    x = np.random.default_rng(3).integers(-128, 129, size=(5, 8))
    wrong = krum_round(x, circuit.params).total + np.eye(8, dtype=np.int64)[0]
    assert witness_check_error(circuit, tagged_inputs(x), wrong, tmp_path) == 1


def test_circuit_reports_another_slots_tag(tmp_path):
    """Client 1's vector (tag 2) in slot 0: a copied commitment cannot be proven."""
    circuit = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128, num_inner_cols=4)
    x = np.random.default_rng(3).integers(-128, 129, size=(5, 8))
    tagged = tagged_inputs(x)
    tagged[0] = tagged[1]
    total = krum_round(tagged[:, :-1], circuit.params).total
    assert witness_check_error(circuit, tagged, total, tmp_path) == (2 * (2 - 1)) ** 2


def test_circuit_settings_pin_the_range_check(small_circuit):
    settings = json.loads((model_dir(small_circuit) / steps.SETTINGS).read_text())
    assert settings["run_args"]["lookup_range"] == [-small_circuit.max_int, small_circuit.max_int]
    assert settings["run_args"]["input_visibility"] == "KZGCommit"
    assert settings["run_args"]["disable_freivalds"] is True
