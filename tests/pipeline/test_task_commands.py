"""The operator's and the requester's commands on anvil, the cases that need no proof: `deploy`
writes the deployment once, `task create` refuses a model the accuracy circuit cannot prove by
naming its op (nothing written), and the commands refuse bad input in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from eth_account import Account

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.types import ETHER

BIN = Path(sys.executable).parent


def stakelearn(*args, key: Account | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"STAKELEARN_KEY": key.key.hex()} if key else {})}
    return subprocess.run(
        [str(BIN / "stakelearn"), *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("stakelearn: error:")]
    return line


class SoftmaxNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=1)


@pytest.mark.anvil
def test_deploy_once_and_create_refuses_an_unprovable_model(tmp_path):
    model, evaluation = tmp_path / "softmax.onnx", tmp_path / "eval.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SoftmaxNet(), (torch.zeros(1, 4),), str(model), input_names=["x"], dynamo=False)
    np.savez(evaluation, x=np.zeros((4, 4)), y=np.array([0, 1, 2, 0]))
    with running_anvil() as anvil:
        operator, requester = Account.create(), Account.create()
        for party in (operator, requester):
            Chain.rpc(anvil.url).fund(party.address, 2 * ETHER)
        rpc = ("--rpc-url", anvil.url)
        deployment = tmp_path / "deployment.json"
        deployed = stakelearn("deploy", *rpc, "--out", deployment, key=operator)
        assert deployed.returncode == 0, deployed.stderr
        written = json.loads(deployment.read_text())
        assert written["governance"] == operator.address and written["chain_id"] == 31337
        assert "exists" in one_error_line(stakelearn("deploy", *rpc, "--out", deployment, key=operator))

        create = (
            *("task", "create", *rpc, "--contract", written["protocol"], "--model", model),
            *("--evaluation", evaluation, "--clients", 4, "-f", 0, "--epochs", 1, "--target-accuracy", 0.5),
            *("--fee-per-epoch-wei", 1, "--out", tmp_path / "task"),
        )
        line = one_error_line(stakelearn(*create, key=requester))
        assert "the model uses Softmax, which the accuracy circuit cannot prove: export the logits" in line
        assert not (tmp_path / "task").exists() and not (tmp_path / "task.secret.npz").exists()

        assert "STAKELEARN_KEY" in one_error_line(stakelearn(*create))  # no key: says where to put it
        missing = one_error_line(stakelearn("task", "status", *rpc, "--task-dir", tmp_path / "nowhere"))
        assert "is not a task folder" in missing
