"""Finding 6: the round circuit range-checked inputs against m * max_int, so an aggregator and a
colluding client landed an update 4.7x the clip (600 against 128). Every update value is now
proven within the clip: no witness with a value beyond it satisfies the circuit."""

import numpy as np
import pytest

from stakelearn.circuits.krum import krum_round, tagged_inputs
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.circuit import input_json, prepare


@pytest.mark.parametrize(
    "value, provable", [(128, True), (-128, True), (129, False), (200, False), (600, False), (-129, False)]
)
def test_only_updates_within_the_clip_satisfy_the_circuit(small_circuit, small_updates, tmp_path, value, provable):
    """Built by hand, past the prover's own checks, as a colluding aggregator would."""
    assert small_circuit.max_int == 128 and small_circuit.bound == 3 * 128
    updates = small_updates.copy()
    updates[0, 0] = value
    prepared = prepare(small_circuit)
    total = krum_round(updates, small_circuit.params).total
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(updates), total))
    steps.gen_witness(tmp_path / steps.INPUT, prepared.compiled, tmp_path / steps.WITNESS)
    assert steps.mock_passes(tmp_path / steps.WITNESS, prepared.compiled) is provable


def test_claimed_sum_of_clipped_updates_may_reach_m_times_the_clip(small_circuit, tmp_path):
    updates = np.full((5, small_circuit.d), 128)
    updates[4] = -128
    prepared = prepare(small_circuit)
    total = krum_round(updates, small_circuit.params).total
    assert total.max() == 3 * 128
    write_json_atomic(tmp_path / steps.INPUT, input_json(tagged_inputs(updates), total))
    steps.gen_witness(tmp_path / steps.INPUT, prepared.compiled, tmp_path / steps.WITNESS)
    assert steps.mock_passes(tmp_path / steps.WITNESS, prepared.compiled)
