"""The federated task end to end on the embedded chain, its audit, and bad configurations."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.pipeline.audit import audit_chain, audit_run
from stakelearn.pipeline.chain import Chain
from stakelearn.pipeline.demo import PROTOCOL, load_run, round_circuit, run_demo
from stakelearn.pipeline.federation import TaskConfig
from stakelearn.pipeline.protocol import attach_protocol
from stakelearn.prover.circuit import prepare

# One attacker among five clients, two epochs: flagged twice, slashed once (2 of the last 3).
SMALL_TASK = TaskConfig(clients=5, byzantine=1, attackers=1, attack="sign_flip", epochs=2)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    chain = Chain.embedded()
    out = tmp_path_factory.mktemp("demo") / "run"
    summary = run_demo(SMALL_TASK, out, chain=chain)
    protocol = attach_protocol(chain, load_run(out)["addresses"], PROTOCOL)
    return summary, out, protocol


@pytest.fixture
def run_copy(demo_run, tmp_path):
    _, out, _ = demo_run
    target = tmp_path / "run"
    shutil.copytree(out, target)
    return target


def audit(protocol, run_dir):
    problems, rounds = audit_chain(protocol, load_run(run_dir)["task_id"])
    prepared = prepare(round_circuit(SMALL_TASK, load_run(run_dir)["inner_cols"]))
    return problems + audit_run(run_dir, protocol, prepared, rounds)


def test_run_demo_slashes_the_attacker_and_pays_only_the_honest(demo_run):
    summary, _, _ = demo_run
    assert summary["outcome"]["attackers_slashed"] == [4]
    assert summary["outcome"]["honest_slashed"] == []
    assert [e["flagged"] for e in summary["epochs"]] == [[4], [4]]
    rewards = [c["reward_wei"] for c in summary["balances"]["clients"]]
    assert all(r > 0 for r in rewards[:4]) and rewards[4] == 0
    assert summary["balances"]["clients"][4]["stake_wei"] == PROTOCOL.stake_wei * 8 // 10
    assert summary["epochs"][-1]["accuracy"] > summary["initial_accuracy"] + 0.5
    assert (out := demo_run[1] / "report").is_dir() and {p.name for p in out.iterdir()} >= {
        "report.md", "summary.json", "accuracy.png", "scores.png", "stakes.png"}


def test_run_demo_balances_add_up(demo_run):
    summary, _, protocol = demo_run
    w3, tasks, registry = protocol.chain.w3, protocol.tasks.functions, protocol.registry.functions
    fees = SMALL_TASK.epochs * 10**17
    assert summary["balances"]["rewarded_wei"] + summary["balances"]["refunded_wei"] == fees
    assert sum(c["reward_wei"] for c in summary["balances"]["clients"]) == summary["balances"]["rewarded_wei"]
    assert w3.eth.get_balance(protocol.tasks.address) == tasks.creditsHeld().call() + tasks.baseFeesHeld().call()
    assert tasks.creditsHeld().call() == 0  # everyone withdrew
    assert w3.eth.get_balance(protocol.registry.address) == registry.totalStaked().call() + registry.slashedTotal().call()


def test_audit_passes_on_the_demo_history(demo_run):
    _, out, protocol = demo_run
    assert audit(protocol, out) == []


def test_audit_detects_a_swapped_update_in_the_store(demo_run, run_copy):
    _, _, protocol = demo_run
    shutil.copy(run_copy / "updates" / "epoch-1" / "client-1.onnx", run_copy / "updates" / "epoch-1" / "client-0.onnx")
    problems = audit(protocol, run_copy)
    assert any("client 0's stored update does not match its on-chain commitment" in p for p in problems)


def test_audit_detects_a_tampered_commitment_record(demo_run, run_copy):
    _, _, protocol = demo_run
    with sqlite3.connect(run_copy / "store.sqlite") as db:
        db.execute("UPDATE updates SET commitment = ? WHERE epoch = 2 AND client = 3", ("00" * 64,))
    assert any("epoch 2: the store's commitments differ" in p for p in audit(protocol, run_copy))


def test_audit_detects_a_global_model_that_is_not_the_proven_one(demo_run, run_copy):
    _, _, protocol = demo_run
    model = np.load(run_copy / "models" / "epoch-1.npy")
    np.save(run_copy / "models" / "epoch-1.npy", model + 1e-3)
    problems = audit(protocol, run_copy)
    assert any("epoch 1: the stored global model is not the previous one plus the proven mean" in p for p in problems)


@pytest.mark.parametrize("fields, message", [
    (dict(clients=5, byzantine=1, attackers=2), "2 attackers exceed the Krum bound f=1"),
    (dict(clients=5, byzantine=2, attackers=1), "Krum needs n > 2f \\+ 2 clients: n=5, f=2"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(attack="poison"), "unknown attack 'poison'"),
    (dict(split="shards"), "unknown split 'shards'"),
])
def test_task_config_rejects_bad_configuration(fields, message):
    with pytest.raises(InputError, match=message):
        TaskConfig(**fields)


@pytest.mark.parametrize("arguments, message", [
    (["--attackers", "3"], "3 attackers exceed the Krum bound f=2"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--attack", "poison"], "unknown attack 'poison'"),
    (["--resume"], "--resume needs --rpc-url"),
])
def test_demo_cli_rejects_bad_configuration_before_any_transaction(tmp_path, arguments, message):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "stakelearn.pipeline.cli", "demo", "--out", str(out), *arguments],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not out.exists()
