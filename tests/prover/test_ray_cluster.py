"""Chunk proofs on a real two-node Ray cluster on this machine: the second node is killed (its
whole process group) while it proves a chunk, and the round still completes, every chunk
proof verifies and the round's checks pass.

Every Ray process is ours and stopped by its process group id, never by name. Ray 2.60 turns
127.0.0.1 and localhost into the machine's outward address, so the nodes take other loopback
addresses (127.0.0.2, 127.0.0.3): all of the cluster's traffic stays on the loopback interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from stakelearn.errors import ProofError
from stakelearn.pipeline.chain.anvil import free_port
from stakelearn.prover.cache import cache_entries, prune
from stakelearn.prover.parallel import SCRATCH, SHIPPED, prove_chunks

from .chunked_round import check_round, chunk_circuit, round_jobs, round_updates

RAY = Path(sys.executable).parent / "ray"
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"
D = 32  # four chunks of 8


@dataclass
class RayNode:
    process: subprocess.Popen
    home: Path  # the node's STAKELEARN_HOME: its own cache, as on another machine
    log: Path

    def started(self) -> bool:
        return "Ray runtime started" in self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the node's process group (ray start, raylet, its workers and their children)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def start_node(arguments: list[str], home: Path, log: Path) -> RayNode:
    # Auth mode stated, not left to Ray 2.60's guess: a head started while ~/.ray/auth_token
    # exists turns token auth on by itself, and a node joining with --address does not.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "STAKELEARN_HOME": str(home)}
    with log.open("wb") as output:
        # Its own session, so its process group holds every process it starts.
        process = subprocess.Popen(
            [str(RAY), "start", *arguments, "--disable-usage-stats", "--block"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node = RayNode(process, home, log)
    deadline = time.monotonic() + 60
    while not node.started():
        if process.poll() is not None or time.monotonic() > deadline:
            node.kill()
            raise RuntimeError(f"ray start failed: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    return node


@pytest.fixture
def cluster(tmp_path):
    # Ray's Unix sockets live under its temp dir, and their paths must stay under 107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = free_port()
    nodes: list[RayNode] = []
    try:
        nodes.append(
            start_node(
                ["--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--num-cpus", "1"]
                + ["--include-dashboard=false", "--temp-dir", str(ray_tmp)],
                tmp_path / "head-home",
                tmp_path / "head.log",
            )
        )
        nodes.append(
            start_node(
                ["--address", f"{HEAD_IP}:{port}", "--node-ip-address", NODE_IP, "--num-cpus", "1"],
                tmp_path / "node-home",
                tmp_path / "node.log",
            )
        )
        yield f"{HEAD_IP}:{port}", nodes
    finally:
        for node in reversed(nodes):
            node.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def proving_on(node: RayNode) -> bool:
    """A chunk task is in its proving step on ``node``: its scratch folder holds a witness."""
    return any((node.home / SCRATCH).glob(".chunk-*.tmp-*/chunk/witness.json"))


def kill_when_proving(node: RayNode, killed: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        if proving_on(node):
            node.kill()
            killed.set()
            return
        time.sleep(0.05)


def test_round_survives_a_node_killed_mid_proof(cluster, tmp_path):
    address, (head, node) = cluster
    chunk = chunk_circuit()
    updates = round_updates(D)
    jobs = round_jobs(updates)
    killed, stop = threading.Event(), threading.Event()
    killer = threading.Thread(target=kill_when_proving, args=(node, killed, stop), daemon=True)
    killer.start()
    stats = {}
    try:
        outcomes = prove_chunks(chunk, jobs, tmp_path / "chunks", ray_address=address, memory_mb=1024, stats=stats)
    finally:
        stop.set()
        killer.join()
    assert killed.is_set(), "the second node never started proving a chunk"
    assert node.process.returncode == -signal.SIGKILL
    assert sorted(stats) == [0, 1, 2, 3]
    check_round(chunk, jobs, outcomes, updates, tmp_path)

    # Each node received the circuit's files once, into its own cache, which lists them and
    # prunes them. (Whether the killed node's unfinished scratch folder is left depends on when
    # its orphaned worker notices the node is gone, so it is not asserted.)
    assert len(list((head.home / SHIPPED).iterdir())) == 1
    assert len(list((node.home / SHIPPED).iterdir())) == 1
    assert "shipped" in {e.kind for e in cache_entries(head.home)}
    prune(head.home)
    assert not list((head.home / SHIPPED).iterdir())

    # A task's own failure comes back as its one-line error, not retried.
    wrong = replace(jobs[0], claimed=jobs[0].claimed + 1)
    with pytest.raises(ProofError, match="check_error"):
        prove_chunks(chunk, [wrong], tmp_path / "wrong", ray_address=address, memory_mb=1024)
