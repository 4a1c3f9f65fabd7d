"""The NNM + Multi-Krum circuit computes exactly what the numpy reference computes (its torch
module: `test_krum_module.py`, beside Multi-Krum's), and refuses a wrong aggregate."""

import json

import numpy as np
import pytest

from stakelearn.circuits.krum import KrumParams, krum_round, tagged_inputs
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import RoundCircuit, input_json, model_dir
from stakelearn.prover.round import public_outputs

from .test_krum_module import absent_last

NNM = "nnm-multikrum"
SHAPES = [(5, 1, 3, 8), (7, 2, 3, 5), (9, 3, 6, 10)]


@pytest.mark.parametrize("n, f, m, d", SHAPES)
def test_circuit_witness_matches_reference_exactly(n, f, m, d, tmp_path):
    circuit = RoundCircuit(n=n, f=f, m=m, d=d, max_int=128, num_inner_cols=4, rule=NNM)
    x = np.random.default_rng(n + d).integers(-128, 129, size=(n, d))
    x[0] = x[1]  # equal updates: equal distances exercise both tie-breaks
    gone = absent_last(n, circuit.params.allowed_absent)
    x[gone] = 0
    reference = krum_round(x, circuit.params, gone, circuit.absent_distance)
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(x, gone), reference.total))
    witness = steps.gen_witness(tmp_path / steps.INPUT, model_dir(circuit) / steps.COMPILED, tmp_path / steps.WITNESS)
    parts = public_outputs(witness["outputs"][0], n)
    assert parts["scores"] == reference.scores.tolist()
    assert parts["mask"] == reference.mask.astype(int).tolist()
    assert parts["absent"] == gone.astype(int).tolist()
    assert parts["check_error"] == 0
    assert steps.mock_passes(tmp_path / steps.WITNESS, model_dir(circuit) / steps.COMPILED)


def test_circuit_reports_the_plain_selected_sum(tmp_path):
    """Claiming Multi-Krum's plain sum (or anything but the mixed weights' sum) shows in check_error."""
    circuit = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128, num_inner_cols=4, rule=NNM)
    x = np.random.default_rng(3).integers(-128, 129, size=(5, 8))
    plain = krum_round(x, KrumParams(5, 1, 3)).total
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(x), plain))
    witness = steps.gen_witness(tmp_path / steps.INPUT, model_dir(circuit) / steps.COMPILED, tmp_path / steps.WITNESS)
    assert public_outputs(witness["outputs"][0], 5)["check_error"] > 0


def test_rules_are_different_circuits_and_multikrum_keeps_its_digest():
    plain = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128)
    mixed = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128, rule=NNM)
    assert plain.digest != mixed.digest
    assert "rule" not in plain.description() and plain.description()["circuit"].startswith("multikrum-round-")
    settings = json.loads((model_dir(mixed) / steps.SETTINGS).read_text())
    assert settings["run_args"]["lookup_range"] == [-128, 128]  # the clip's table, as Multi-Krum's


FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617  # BN254 scalars
SQRT_MINUS_ONE = pow(5, (FIELD - 1) // 4, FIELD)  # 5 generates the group; the field has -1 as a square


@pytest.mark.parametrize("rule", ["multikrum", NNM])
def test_a_claimed_sum_whose_errors_square_to_zero_is_refused(rule, tmp_path):
    """An aggregator claims total - (1, i, 0, ...) with i^2 = -1 in the field: check_error is
    1 + i^2 = 0, so without a range check of the claimed values the proof would pass with a
    wrong aggregate. The range check's lookup refuses the witness."""
    circuit = RoundCircuit(n=5, f=1, m=3, d=8, max_int=128, num_inner_cols=4, rule=rule)
    x = np.random.default_rng(3).integers(-128, 129, size=(5, 8))
    data = input_json(tagged_inputs(x), krum_round(x, circuit.params).total)
    claimed = [int(v) for v in data["input_data"][-1]]
    claimed[0] -= 1
    claimed[1] -= SQRT_MINUS_ONE
    data["input_data"][-1] = [(v % FIELD).to_bytes(32, "little").hex() for v in claimed]  # field elements
    write_json_atomic(tmp_path / steps.INPUT, data)
    compiled = model_dir(circuit) / steps.COMPILED
    witness = steps.gen_witness(tmp_path / steps.INPUT, compiled, tmp_path / steps.WITNESS)
    assert public_outputs(witness["outputs"][0], 5)["check_error"] == 0  # the squares wrapped around
    assert not steps.mock_passes(tmp_path / steps.WITNESS, compiled)


@pytest.mark.slow  # two compiles at d = 1,024, about a minute and 3.3 GB
def test_nnm_costs_at_most_1_2x_the_rows_at_the_reference_point():
    """Issue 15's budget: the NNM round at n = 16, d = 1,024 (f = 6, as `stakelearn bench`) within
    1.2x the Multi-Krum round's rows (measured 46,167 against 40,421)."""
    rows = {
        rule: json.loads((model_dir(RoundCircuit(16, 6, 10, 1024, 128, rule=rule)) / steps.SETTINGS).read_text())[
            "num_rows"
        ]
        for rule in ("multikrum", NNM)
    }
    assert rows["multikrum"] < rows[NNM] <= 1.2 * rows["multikrum"]
