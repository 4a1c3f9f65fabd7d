"""`stakelearn gas` runs end to end, so the gas figures cannot rot."""

import json

import pytest

from stakelearn.pipeline.cli import main


@pytest.mark.slow  # 28 s; tests/verifier_contracts/test_gas_snapshot.py measures every function in CI
def test_gas_command_measures_every_function(tmp_path):
    assert main(["gas", "--clients", "5", "--out", str(tmp_path)]) == 0
    gas = json.loads((tmp_path / "gas.json").read_text())["5"]
    epoch = gas["submitRound (epoch, flags)"]
    assert gas["verifyProof (ezkl verifier alone)"] < gas["verifyRound (RoundVerifier)"] < epoch
    assert all(value > 21_000 for value in gas.values())
    assert "one epoch" in (tmp_path / "gas.md").read_text()
