"""`stakelearn explorer` as a user runs it, against the demo running on an anvil node the test
starts on 127.0.0.1: the page follows the task epoch by epoch while it runs, shows the attacker
slashed (for an equivocation reported mid-task) and the honest clients' stakes intact, lists the
epochs exactly as `audit` rebuilds them, and once the task settles shows the proven accuracy,
the payout and the run folder's test accuracy (the folder checked against the chain first). A
tampered copy of the folder is refused on the page in one line, as is an address that is not the
protocol's. With
STAKELEARN_UPDATE_SCREENSHOT=1 the page's screenshot replaces docs/explorer.png (the README's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from eth_utils import keccak

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol
from stakelearn.pipeline.node.run_folder import load_run, model_path, task_dir

from .browser import browser_page
from .test_explorer_page import audit_epochs, page_epochs

TASK = ["--clients", "5", "--byzantine", "1", "--attackers", "1", "--epochs", "3", "--evaluation-samples", "32"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "explorer.png"


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "stakelearn.pipeline.cli", *arguments]


def wait_for(condition, what: str, seconds: float = 600, process=None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process is None or process.poll() is None, f"the demo ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


class Served:
    """`stakelearn explorer` in a process of its own, stopped by its pid."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            cli("explorer", "--port", "0", "--refresh", "1", *arguments),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        assert "http://127.0.0.1:" in line, line + self.process.stderr.read()
        self.url = line.split(": ", 1)[1].split(" ")[0]

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *_) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.anvil
def test_the_explorer_follows_a_demo_task_on_anvil(tmp_path):
    out = tmp_path / "run"
    with running_anvil() as node:
        demo = subprocess.Popen(
            cli("demo", *TASK, "--rpc-url", node.url, "--out", str(out)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(lambda: (out / "run.json").exists(), "the task was posted", process=demo)
            run = load_run(out)
            protocol = attach_protocol(Chain.rpc(node.url), run["addresses"])
            task_id = run["task_id"]
            with Served("--rpc-url", node.url, "--run", str(out)) as served, browser_page() as (page, errors):
                page.goto(served.url)
                page.wait_for_selector('#epochs tr[data-epoch="1"]', timeout=600_000)
                # The attacker signs a second commitment for epoch 1: anyone may report it.
                attacker = Account.from_key(run["keys"]["clients"][4])
                first, second = keccak(text="one") * 2, keccak(text="two") * 2
                reporter = Chain.rpc(node.url)
                reporter.execute(
                    reporter.require_payer(),
                    protocol.tasks,
                    "reportEquivocation",
                    task_id,
                    1,
                    first,
                    protocol.sign_update(attacker, task_id, 1, first),
                    second,
                    protocol.sign_update(attacker, task_id, 1, second),
                )
                page.wait_for_selector('#epochs tr[data-epoch="2"]', timeout=600_000)  # no reload: it polls
                wait_for(lambda: demo.poll() is not None, "the demo finished", process=None)
                assert demo.returncode == 0
                page.wait_for_selector('#settlement [data-field="accuracy"]', timeout=60_000)
                page.wait_for_selector("#accuracy-chart canvas", timeout=120_000)
                page.wait_for_timeout(1500)  # a last poll after settlement
                shown = page_epochs(page)
                expected = audit_epochs(protocol, task_id)
                assert {e: {k: row[k] for k in expected[e]} for e, row in shown.items()} == expected
                assert set(shown) == {1, 2, 3}
                assert shown[1]["slashed"] == "4"
                assert all(row["flagged"] == "4" for row in shown.values()), "the sign flipper stands out each epoch"
                stake = protocol.stake_amount() / 10**18
                stakes = [
                    float(page.inner_text(f'#parties tr[data-client="{i}"] [data-field=stake]')) for i in range(5)
                ]
                assert stakes[:4] == [stake] * 4 and stakes[4] < stake
                assert "correct (proven)" in page.inner_text("#settlement")
                assert errors == []
                page.screenshot(path=tmp_path / "explorer.png", full_page=True)
                if os.environ.get("STAKELEARN_UPDATE_SCREENSHOT") == "1":
                    shutil.copyfile(tmp_path / "explorer.png", SCREENSHOT)

            # A client or requester opens it from the public task folder it was handed.
            with (
                Served("--rpc-url", node.url, "--task-dir", str(task_dir(out))) as served,
                browser_page() as (
                    page,
                    errors,
                ),
            ):
                assert served.url.endswith(f"?task={task_id}")
                page.goto(served.url)
                page.wait_for_selector('#epochs tr[data-epoch="3"]', timeout=60_000)
                assert page.is_hidden("#run-section") and errors == []

            wrong = {
                protocol.registry.address: "is not a StakeLearn protocol",  # code, but not the protocol's
                protocol.task(task_id).requester: "no contract at",
            }
            for address, expected in wrong.items():
                with Served("--rpc-url", node.url, "--contract", address) as served, browser_page() as (page, _):
                    page.goto(served.url)
                    page.wait_for_selector("#message:not([hidden])", timeout=60_000)
                    assert expected in page.inner_text("#message")

            tampered = tmp_path / "tampered"
            shutil.copytree(out, tampered)
            np.save(model_path(tampered, 2), np.load(model_path(tampered, 2)) + 0.01)
            with Served("--rpc-url", node.url, "--run", str(tampered)) as served, browser_page() as (page, _):
                page.goto(served.url)
                page.wait_for_selector("#message:not([hidden])", timeout=120_000)
                message = page.inner_text("#message")
                assert "does not verify against the chain" in message and "epoch 2" in message
                assert page.is_hidden("#run-section")
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, 9)
