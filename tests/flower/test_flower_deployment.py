"""The Flower example on Flower's deployment engine: anvil, a SuperLink, and for each client a
signer holding its key and a SuperNode whose node config names its node, task folder and signer,
each a process of its own on 127.0.0.1. Two rounds of the digits task (8 clients, 2 sign
flippers, m = 4) run through ProvenMultiKrum; one honest SuperNode is killed as the second round
starts, and that round closes without it (absent, by the protocol's rule). Checked on chain."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from stakelearn.pipeline.apps.demo import run_demo
from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.pipeline.flower import open_task
from stakelearn.pipeline.flower.local import (
    flower_env,
    flwr_run,
    start_signers,
    start_superlink,
    start_supernode,
    write_connection,
)
from stakelearn.pipeline.node.run_folder import task_dir

from . import EXAMPLE

CONFIG = TaskConfig(clients=8, byzantine=2, attackers=2, attack="sign_flip", select=4, epochs=2)
KILLED = 1  # an honest client
ROUND_TIMEOUT = 150  # seconds a round waits for replies (8 ClientApp processes on 2 cores)


def kill_when_epoch_lands(protocol, task_id: int, node, stop: threading.Event, killed: threading.Event) -> None:
    while not stop.is_set():
        if protocol.logs("RoundSubmitted", taskId=task_id, epoch=1):
            node.stop()
            killed.set()
            return
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.anvil
def test_proven_rounds_on_flower_deployment(tmp_path):
    services = []
    with running_anvil() as anvil:
        try:
            run_dir = tmp_path / "task"
            run = run_demo(CONFIG, run_dir, chain=Chain.rpc(anvil.url), setup_only=True, commit_window=20)
            task = open_task(task_dir(run_dir), anvil.url)
            env = flower_env(tmp_path / "flwr-home")
            protocol = run["addresses"]["protocol"]
            signers, urls = start_signers(
                run["keys"]["clients"], anvil.url, protocol, env, tmp_path, run_dir / "flower"
            )
            services += signers
            link, port = start_superlink(env, tmp_path)
            services.append(link)
            nodes = [
                start_supernode(
                    port,
                    i,
                    CONFIG.clients,
                    env,
                    tmp_path,
                    {"rpc-url": anvil.url, "task-dir": str(task_dir(run_dir)), "signer-url": url},
                )
                for i, url in enumerate(urls)
            ]
            services += nodes
            connection = write_connection(tmp_path / "flwr-home", port)
            stop, killed = threading.Event(), threading.Event()
            killer = threading.Thread(
                target=kill_when_epoch_lands, args=(task.protocol, run["task_id"], nodes[KILLED], stop, killed)
            )
            killer.start()
            settings = {"run-dir": str(run_dir), "rpc-url": anvil.url, "round-timeout": ROUND_TIMEOUT}
            try:
                launched = subprocess.run(
                    flwr_run(EXAMPLE, connection, settings),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=1200,
                )
            finally:
                stop.set()
                killer.join()
            logs = launched.stdout + launched.stderr
            assert launched.returncode == 0, logs[-4000:]
            assert killed.is_set()

            rounds = {
                e["args"]["epoch"]: e["args"] for e in task.protocol.logs("RoundSubmitted", taskId=run["task_id"])
            }
            assert sorted(rounds) == [1, 2], logs[-4000:]
            attackers = set(CONFIG.attacker_ids)
            for epoch, event in rounds.items():
                flagged = {i for i in range(CONFIG.clients) if event["flaggedMask"] >> i & 1}
                assert attackers <= flagged and not flagged - attackers, (epoch, flagged)
            assert rounds[1]["absentMask"] == 0
            assert rounds[2]["absentMask"] == 1 << KILLED  # the killed node's slot, absent, not flagged
            slashed = {task.clients().index(e["args"]["client"]) for e in task.protocol.logs("ClientSlashed")}
            assert slashed <= attackers  # no honest client slashed (whether flags slash is the protocol's policy)

            summary = json.loads((run_dir / "flower" / "proven.json").read_text())
            first = summary["rounds"][0]["train"]
            assert first["flower-selected"] == first["selected"]  # all present: Flower's MultiKrum agrees
        finally:
            for service in reversed(services):
                service.stop()
    assert all(s.process.poll() is not None for s in services)
