"""The Flower example on Flower's simulation engine, through the CLI a user runs: a task posted
on anvil (`stakelearn demo --setup-only`), its rounds run by `stakelearn flower` with
ProvenMultiKrum (then its final accuracy proven and the task settled) and then with Flower's
own MultiKrum on the same task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.flower import open_task
from stakelearn.pipeline.node.run_folder import task_dir

from . import EXAMPLE

CLI = [str(Path(sys.executable).parent / "stakelearn")]
ATTACKERS = {6, 7}


def stakelearn(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
@pytest.mark.anvil
def test_proven_and_plain_multikrum_on_flower_simulation(tmp_path):
    run_dir = tmp_path / "task"
    with running_anvil() as anvil:
        setup = stakelearn(
            "demo", "--rpc-url", anvil.url, "--select", 4, "--epochs", 2, "--setup-only", "--out", run_dir
        )
        assert setup.returncode == 0, setup.stderr[-3000:]
        flower = ("flower", "--run-dir", run_dir, "--rpc-url", anvil.url, "--app", EXAMPLE)
        proven = stakelearn(*flower)
        assert proven.returncode == 0, (proven.stdout + proven.stderr)[-4000:]
        plain = stakelearn(*flower, "--strategy", "multikrum")
        assert plain.returncode == 0, (plain.stdout + plain.stderr)[-4000:]
        task = open_task(task_dir(run_dir), anvil.url)
        rounds = {e["args"]["epoch"]: e["args"] for e in task.protocol.logs("RoundSubmitted", taskId=task.task_id)}
        (proven_accuracy,) = task.protocol.logs("AccuracyProven", taskId=task.task_id)
        (completed,) = task.protocol.logs("TaskCompleted", taskId=task.task_id)

    assert sorted(rounds) == [1, 2]
    for event in rounds.values():
        assert {i for i in range(8) if event["flaggedMask"] >> i & 1} == ATTACKERS
    summary = json.loads((run_dir / "flower" / "proven.json").read_text())
    assert "| round | accuracy |" in proven.stdout
    # After the last epoch the final model's accuracy is proven on chain, and the contract paid on it.
    assert summary["accuracy_proof"]["correct"] == proven_accuracy["args"]["correct"]
    assert f"accuracy proven on chain: {proven_accuracy['args']['correct']} of" in proven.stdout
    assert completed["args"]["rewarded"] > 0
    for record in summary["rounds"]:
        assert record["train"]["flower-selected"] == record["train"]["selected"]
        assert not ATTACKERS & set(record["train"]["selected"])
    # Flower's MultiKrum on the same clients: the same selections, so (weights aside) the same model.
    plain_rounds = json.loads((run_dir / "flower" / "multikrum.json").read_text())["rounds"]
    for ours, theirs in zip(summary["rounds"], plain_rounds, strict=True):
        assert abs(ours["accuracy"] - theirs["accuracy"]) < 0.02


@pytest.mark.slow
@pytest.mark.anvil
def test_a_task_proven_in_chunks_on_flower_simulation(tmp_path):
    """A task whose rounds are proven in chunks (3 chunks of 256 and the combine): the strategy
    stages the chunk proofs before the round, and the final accuracy is proven over the chunks."""
    run_dir = tmp_path / "task"
    with running_anvil() as anvil:
        setup = stakelearn(
            "demo",
            "--rpc-url",
            anvil.url,
            "--select",
            4,
            "--epochs",
            1,
            "--chunk",
            256,
            "--setup-only",
            "--out",
            run_dir,
        )
        assert setup.returncode == 0, setup.stderr[-3000:]
        proven = stakelearn("flower", "--run-dir", run_dir, "--rpc-url", anvil.url, "--app", EXAMPLE)
        assert proven.returncode == 0, (proven.stdout + proven.stderr)[-4000:]
        task = open_task(task_dir(run_dir), anvil.url)
        (event,) = task.protocol.logs("RoundSubmitted", taskId=task.task_id)
        assert task.protocol.logs("AccuracyProven", taskId=task.task_id)
    assert {i for i in range(8) if event["args"]["flaggedMask"] >> i & 1} == ATTACKERS
    (record,) = json.loads((run_dir / "flower" / "proven.json").read_text())["rounds"]
    assert record["train"]["flower-selected"] == record["train"]["selected"]
