"""The demo as a user runs it, against an anvil node started by the test on 127.0.0.1 that holds
no unlocked account, like a public node: a funded key named by --private-key-env deploys, the
whole task runs with its aggregator killed mid-epoch and resumed, then the audit command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from eth_account import Account

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol
from stakelearn.pipeline.node.run_folder import load_run
from stakelearn.pipeline.node.task_lifecycle import PROTOCOL

TASK = ["--clients", "5", "--byzantine", "1", "--attackers", "1", "--epochs", "2", "--evaluation-samples", "32"]


def stakelearn(*arguments: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=900,
        **kwargs,
    )


def stage_of(store, epoch: int) -> str | None:
    if not store.exists():
        return None
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            row = db.execute("SELECT stage FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
    except sqlite3.OperationalError:  # the schema is not created yet
        return None
    return row[0] if row else None


def round_events(url: str, out) -> list:
    return attach_protocol(Chain.rpc(url), load_run(out)["addresses"], PROTOCOL).logs("RoundSubmitted", taskId=1)


@pytest.mark.anvil
def test_demo_resumes_after_the_aggregator_is_killed_mid_epoch(tmp_path):
    out, store = tmp_path / "run", tmp_path / "run" / "store.sqlite"
    deployer = Account.create()
    with running_anvil(unlocked_accounts=0) as node:
        chain = Chain.rpc(node.url)
        assert chain.payer is None  # nothing to pay from but the key we give
        chain.w3.provider.make_request("anvil_setBalance", [deployer.address, hex(10**20)])
        without_key = stakelearn("demo", *TASK, "--rpc-url", node.url, "--out", str(tmp_path / "refused"))
        assert without_key.returncode == 1 and "no unlocked account" in without_key.stderr
        command = [
            sys.executable,
            "-m",
            "stakelearn.pipeline.cli",
            "demo",
            *TASK,
            "--rpc-url",
            node.url,
            "--out",
            str(out),
            "--private-key-env",
            "DEPLOYER_KEY",
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "DEPLOYER_KEY": deployer.key.hex()},
        )
        try:
            deadline = time.monotonic() + 600
            while stage_of(store, 2) != "collected":  # epoch 2's updates are stored, its proof is running
                assert process.poll() is None and time.monotonic() < deadline, "the demo ended before epoch 2"
                time.sleep(0.2)
            os.killpg(process.pid, signal.SIGKILL)  # the aggregator and its prover child
            process.wait()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        with sqlite3.connect(store) as db:
            signed_before = db.execute("SELECT commitment FROM updates WHERE epoch = 2 ORDER BY client").fetchall()
        assert [e["args"]["epoch"] for e in round_events(node.url, out)] == [1]

        resumed = stakelearn("demo", "--resume", "--rpc-url", node.url, "--out", str(out), "--json")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "resuming task 1" in resumed.stderr and "resuming at stage 'collected'" in resumed.stderr
        events = round_events(node.url, out)
        assert [e["args"]["epoch"] for e in events] == [1, 2]  # nothing submitted twice
        on_chain = bytes(events[1]["args"]["commitments"])
        assert [bytes.fromhex(c) for (c,) in signed_before] == [on_chain[64 * i : 64 * (i + 1)] for i in range(5)]
        summary = json.loads(resumed.stdout)
        assert summary["chain"]["name"] == node.url
        assert summary["outcome"]["attackers_flagged"] == [4] and summary["outcome"]["honest_flagged"] == []
        assert summary["accuracy_proof"]["target_reached"]
        audit = stakelearn("audit", "--rpc-url", node.url, "--task", "1", "--run", str(out))
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "2 epochs rebuilt from chain events" in audit.stdout and "audit passed" in audit.stdout
        contract_only = stakelearn(
            "audit", "--rpc-url", node.url, "--task", "1", "--contract", summary["chain"]["protocol"]
        )
        assert contract_only.returncode == 0 and "audit passed" in contract_only.stdout
