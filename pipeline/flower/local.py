"""A Flower federation on this machine's loopback, for the example and the tests: a SuperLink
(with Flower's simulation engine, or for the deployment engine one SuperNode per client), each
in a session of its own (one process group with every process it starts), stopped by its
process group id. Flower's telemetry and update check are off: nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stakelearn.errors import ToolchainError
from stakelearn.pipeline.apps.tables import markdown_table
from stakelearn.pipeline.chain.anvil import free_port

BIN = Path(sys.executable).parent  # flwr, flower-superlink, flower-supernode; and the processes they start
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "RAY_USAGE_STATS_ENABLED": "0"}
CONNECTION = "stakelearn-local"


def flower_env(flwr_home: Path) -> dict:
    return {**os.environ, **QUIET, "FLWR_HOME": str(flwr_home), "PATH": f"{BIN}:{os.environ['PATH']}"}


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def start(name: str, command: list[str], env: dict, folder: Path) -> Service:
    log = folder / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Service(name, process, log)


def start_superlink(env: dict, folder: Path, simulation: bool = False) -> tuple[Service, int]:
    """A SuperLink on 127.0.0.1 (one port for every API), running apps in this environment."""
    port = free_port()
    command = [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--disable-runtime-dependency-installation"] + (["--simulation"] if simulation else [])
    link = start("superlink", command, env, folder)
    deadline = time.monotonic() + 60
    while link.process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return link, port
        except OSError:
            time.sleep(0.3)
    link.stop()
    raise ToolchainError(f"the SuperLink did not start: {link.text()[-2000:]}")


def start_supernode(link_port: int, partition: int, partitions: int, env: dict, folder: Path) -> Service:
    command = [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link_port}"]
    command += ["--port", str(free_port()), "--node-config", f"partition-id={partition} num-partitions={partitions}"]
    return start(f"supernode-{partition}", command, env, folder)


def write_connection(flwr_home: Path, link_port: int) -> str:
    """The flwr CLI's connection to the SuperLink ($FLWR_HOME/config.toml); its name."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
    )
    return CONNECTION


def flwr_run(app: Path, connection: str, run_config: dict, supernodes: int | None = None) -> list[str]:
    """The ``flwr run`` command for ``app`` on the connection (simulation: with ``supernodes``)."""
    settings = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in run_config.items())
    command = [str(BIN / "flwr"), "run", str(app), connection, "--stream", "--run-config", settings]
    if supernodes is not None:
        command += ["--federation-config", f"num-supernodes={supernodes} client-resources-num-cpus=1"]
    return command


def run_federation(
    app: Path, run_config: dict, clients: int, folder: Path, simulation: bool, timeout: float | None = None
) -> int:
    """Start a SuperLink (and for the deployment engine ``clients`` SuperNodes), run ``app`` with
    ``run_config`` through ``flwr run``, its output on this process's, and stop everything; the
    exit code of ``flwr run``. The services' logs are kept in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = flower_env(folder / "flwr-home")
    services: list[Service] = []
    try:
        link, port = start_superlink(env, folder, simulation)
        services.append(link)
        if not simulation:
            services += [start_supernode(port, i, clients, env, folder) for i in range(clients)]
        connection = write_connection(folder / "flwr-home", port)
        command = flwr_run(app, connection, run_config, clients if simulation else None)
        return subprocess.run(command, env=env, timeout=timeout).returncode
    finally:
        for service in reversed(services):
            service.stop()


def round_table(summary: dict) -> str:
    """The example ServerApp's rounds (``<run-dir>/flower/<strategy>.json``) as a table."""
    proven = summary["strategy"] == "proven"
    header = ["round", "accuracy", "round s"]
    if proven:
        header += ["selected", "Flower's MultiKrum", "flagged", "slashed", "absent", "commit s", "check s", "prove s"]
        header += ["submit s", "gas"]
    rows = []
    for r in summary["rounds"]:
        row, t = [r["round"], f"{r['accuracy']:.3f}", f"{r['seconds']:.1f}"], r["train"]
        if proven and "selected" in t:
            row += [t[k] for k in ("selected", "flower-selected", "flagged", "slashed", "absent")]
            seconds = ("commit-seconds", "check-seconds", "prove-seconds", "submit-seconds")
            row += [f"{t[k]:.1f}" for k in seconds] + [f"{t['gas']:,}"]
        elif proven:
            row += ["none: too many absent", "", "", "", t.get("absent", ""), "", "", "", "", ""]
        rows.append(row)
    return markdown_table(header, rows) + "\n"
