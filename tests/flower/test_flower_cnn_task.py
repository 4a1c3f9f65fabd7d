"""A model the demo never saw, from `task create` to the clients' withdrawal, every party with its
own key, on anvil, through the commands the README gives (examples/flower-cnn): the operator
deploys, the requester prepares its task from its ONNX CNN, governance approves the shape, the
requester posts, each client stakes and enrolls from the task folder, the rounds run on Flower
(each client's key in its own signer, the aggregator's in the ServerApp alone), the requester
reveals, the aggregator proves the final model's accuracy on chain, and everyone withdraws."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol
from stakelearn.pipeline.contracts.types import ETHER, TaskStatus
from stakelearn.pipeline.node.task_description import FILES, read_task_folder

APP = Path(__file__).resolve().parents[2] / "examples" / "flower-cnn"
BIN = Path(sys.executable).parent
CLIENTS = 4


def command(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})}, cwd=cwd
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def refusal(*args, env: dict) -> str:
    """The one error line a command that must fail prints."""
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, env={**os.environ, **env}
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


def stakelearn(*args, key: Account | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    keys = {"STAKELEARN_KEY": key.key.hex()} if key is not None else {}
    return command(BIN / "stakelearn", *args, env={**keys, **(env or {})})


@pytest.mark.slow
@pytest.mark.anvil
def test_a_cnn_task_from_create_to_withdraw_with_own_keys(tmp_path):
    model, evaluation, task_dir = tmp_path / "cnn.onnx", tmp_path / "eval.npz", tmp_path / "cnn-task"
    command(sys.executable, "-m", "flower_cnn.task", "--model", model, "--evaluation", evaluation, cwd=APP)
    with running_anvil() as anvil:
        funder = Chain.rpc(anvil.url)
        operator, requester, aggregator = Account.create(), Account.create(), Account.create()
        clients = [Account.create() for _ in range(CLIENTS)]
        for party in [operator, requester, aggregator, *clients]:
            funder.fund(party.address, 5 * ETHER)
        rpc = ("--rpc-url", anvil.url)

        stakelearn("deploy", *rpc, "--out", tmp_path / "deployment.json", "--unbonding-seconds", 60, key=operator)
        protocol_address = read_json(tmp_path / "deployment.json")["protocol"]
        create = (
            *("task", "create", *rpc, "--contract", protocol_address, "--model", model, "--evaluation", evaluation),
            *("--clients", CLIENTS, "-f", 0, "--epochs", 2, "--target-accuracy", 0.5),
            *("--fee-per-epoch-wei", ETHER // 10, "--samples-per-proof", 8, "--out", task_dir),
        )
        stakelearn(*create, "--prepare-only", key=requester)
        refused = refusal(BIN / "stakelearn", *create, env={"STAKELEARN_KEY": requester.key.hex()})
        assert "no verifier pair for this task's shape is approved" in refused  # governance has not approved it
        approve = ("deploy", *rpc, "--approve", task_dir, "--deployment", tmp_path / "deployment.json")
        assert "only the protocol's governance" in refusal(
            BIN / "stakelearn", *approve, env={"STAKELEARN_KEY": requester.key.hex()}
        )
        stakelearn(*approve, key=operator)
        posted = stakelearn(*create, key=requester)  # the same command again: the prepared folder, the same salt
        assert "task 1 posted" in posted.stdout

        # What the clients are handed holds no key, and the secret stays beside it.
        assert sorted(p.name for p in task_dir.iterdir()) == sorted(FILES)
        for path in task_dir.iterdir():
            text = path.read_bytes()
            for party in [operator, requester, aggregator, *clients]:
                assert party.key.hex()[2:].encode() not in text
        secret = tmp_path / "cnn-task.secret.npz"
        assert secret.stat().st_mode & 0o077 == 0

        chain = ("--contract", protocol_address)
        for client in clients:
            stakelearn("stake", *rpc, *chain, key=client)
            stakelearn("enroll", *rpc, *chain, "--task-dir", task_dir, key=client)

        keys = {
            "STAKELEARN_CLIENT_KEYS": " ".join(c.key.hex() for c in clients),
            "STAKELEARN_AGGREGATOR_KEY": aggregator.key.hex(),
        }
        flower = stakelearn("flower", "--task-dir", task_dir, *rpc, "--app", APP, env=keys)
        assert "| round | accuracy |" in flower.stdout

        protocol = attach_protocol(Chain.rpc(anvil.url), {"protocol": protocol_address})
        assert protocol.task(1).status == TaskStatus.EVALUATING
        stakelearn("task", "reveal", *rpc, "--task-dir", task_dir, "--secret", secret, key=requester)
        with np.load(task_dir.with_name("cnn-task.evaluation.npz")) as published:  # the set, off chain
            assert set(published.files) == {"x", "y"} and len(published["y"]) == 32
        work = task_dir.with_name("cnn-task.work")
        settled = stakelearn(
            *("task", "settle", *rpc, "--task-dir", task_dir, "--aggregate", work / "aggregate-epoch-002.npy"),
            *("--out", tmp_path / "accuracy"),
            key=aggregator,
        )
        correct, samples = map(int, re.search(r"(\d+) of (\d+) correct", settled.stdout).groups())
        assert samples == 32 and correct >= 16
        assert protocol.task(1).status == TaskStatus.COMPLETED

        empty_home = {"STAKELEARN_HOME": str(tmp_path / "empty-home")}
        verified = stakelearn("verify", tmp_path / "accuracy", env=empty_home)
        assert f"{correct} of {samples} correct" in verified.stdout

        status = stakelearn("task", "status", *rpc, "--task-dir", task_dir)
        assert "completed" in status.stdout and f"accuracy proven: {correct} of {samples}" in status.stdout
        for client in clients:
            before = protocol.chain.w3.eth.get_balance(client.address)
            stakelearn("withdraw", *rpc, *chain, "--stake", key=client)
            assert protocol.credit_of(client.address) == 0
            assert protocol.chain.w3.eth.get_balance(client.address) > before  # its share of the fees
        protocol.chain.w3.provider.make_request("evm_increaseTime", [61])
        protocol.chain.w3.provider.make_request("evm_mine", [])
        for client in clients:
            stakelearn("withdraw", *rpc, *chain, "--stake", key=client)
            assert protocol.stake_of(client.address) == 0
        description = read_task_folder(task_dir).description
        assert description.task_id == 1 and np.prod(description.layout[0][1]) == 36


def read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text())
