"""A Flower federation on this machine's loopback, for the example and the tests: a SuperLink
(with Flower's simulation engine, or for the deployment engine one SuperNode per client) and one
signer per client (``stakelearn signer``, holding that client's key), each in a session of its
own (one process group with every process it starts), stopped by its process group id. Each
client's chain node, task folder and signer reach its ClientApps through the SuperNode's node
config (the deployment engine) or the environment (the simulation engine, whose virtual nodes
have no node config of their own), never through the run config. Flower's telemetry and update
check are off: nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stakelearn.errors import ToolchainError
from stakelearn.pipeline.chain.anvil import free_port
from stakelearn.tables import markdown_table

BIN = Path(sys.executable).parent  # flwr, flower-superlink, flower-supernode; and the processes they start
QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "RAY_USAGE_STATS_ENABLED": "0"}
CONNECTION = "stakelearn-local"


KEY_ENV = "STAKELEARN_KEY"  # a signer's key, in its own environment only


def flower_env(flwr_home: Path) -> dict:
    """The environment of Flower's processes: no key in it (the signers hold them)."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    return {**env, **QUIET, "FLWR_HOME": str(flwr_home), "PATH": f"{BIN}:{os.environ['PATH']}"}


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


def start_signer(
    index: int, key: str, rpc_url: str, contract: str, env: dict, folder: Path, protection: Path
) -> tuple[Service, str]:
    """Client ``index``'s signer (``stakelearn signer``) on a free port of 127.0.0.1, its key in
    its environment only, its slashing protection in ``protection``, its log in ``folder``; the
    service and its URL (:func:`wait_for_signer` until it answers)."""
    port = free_port()
    command = [str(BIN / "stakelearn"), "signer", "--rpc-url", rpc_url, "--contract", contract]
    command += ["--private-key-env", KEY_ENV, "--slashing-protection", str(protection), "--port", str(port)]
    return start(f"signer-{index}", command, {**env, KEY_ENV: key}, folder), f"http://127.0.0.1:{port}"


def wait_for_signer(signer: Service, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while signer.process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/address", timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise ToolchainError(f"{signer.name} did not start: {signer.text()[-2000:]}")


def start_signers(
    keys: list[str], rpc_url: str, protocol: str, env: dict, folder: Path, protection: Path
) -> tuple[list[Service], list[str]]:
    """One signer per client key (a local trial: a real client runs its own signer with its own
    key). Their slashing protection is kept in ``protection`` (``signer-I.sqlite``), whichever
    engine runs the task: a signer never signs two commitments for one epoch across runs."""
    protection.mkdir(parents=True, exist_ok=True)
    services, urls = [], []
    try:
        for index, key in enumerate(keys):
            database = protection / f"signer-{index}.sqlite"
            service, url = start_signer(index, key, rpc_url, protocol, env, folder, database)
            services.append(service)
            urls.append(url)
        for service, url in zip(services, urls, strict=True):
            wait_for_signer(service, url)
    except BaseException:
        for service in services:
            service.stop()
        raise
    return services, urls


@dataclass(frozen=True)
class ClientNodes:
    """What the federation's clients are given: the task folder, a node of its chain and, to
    start one signer each, their keys (with the protocol they sign for and where the signers
    keep their slashing protection)."""

    task_dir: Path
    rpc_url: str
    keys: list[str] | None = None
    protocol: str = ""
    protection: Path | None = None


def node_config_text(settings: dict) -> str:
    """``flower-supernode --node-config``'s text: space-separated key=value, strings quoted."""
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in settings.items())


def start_supernode(
    link_port: int, partition: int, partitions: int, env: dict, folder: Path, node_config: dict | None = None
) -> Service:
    """A SuperNode for client ``partition``; ``node_config`` is its own (``rpc-url``,
    ``task-dir``, ``signer-url``), beside the example's partition."""
    settings = {"partition-id": partition, "num-partitions": partitions, **(node_config or {})}
    command = [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link_port}"]
    command += ["--port", str(free_port()), "--node-config", node_config_text(settings)]
    return start(f"supernode-{partition}", command, env, folder)


def client_env(rpc_url: str, task_dir: Path, signer_urls: list[str]) -> dict:
    """The clients' settings as the simulation engine's ClientApps read them (``client.NODE_SETTINGS``)."""
    return {
        "STAKELEARN_RPC_URL": rpc_url,
        "STAKELEARN_TASK_DIR": str(task_dir),
        "STAKELEARN_SIGNER_URL": " ".join(signer_urls),
    }


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
    app: Path,
    run_config: dict,
    clients: int,
    folder: Path,
    simulation: bool,
    timeout: float | None = None,
    client_node: ClientNodes | None = None,
    server_env: dict | None = None,
) -> int:
    """Start a SuperLink (and for the deployment engine ``clients`` SuperNodes), run ``app`` with
    ``run_config`` through ``flwr run``, its output on this process's, and stop everything; the
    exit code of ``flwr run``. With ``client_node``, the clients' settings go to each SuperNode's
    node config (for the simulation engine, to the environment), and with its keys one signer
    per client is started first. ``server_env`` goes to the SuperLink's environment alone, where
    the ServerApp runs (the aggregator's key: no SuperNode gets it). The services'
    logs are kept in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = flower_env(folder / "flwr-home")
    services: list[Service] = []
    try:
        own: list[dict] = [{} for _ in range(clients)]
        if client_node is not None:
            task_dir, rpc_url = client_node.task_dir, client_node.rpc_url
            urls = [""] * clients
            if client_node.keys:
                started, urls = start_signers(
                    client_node.keys, rpc_url, client_node.protocol, env, folder, client_node.protection
                )
                services += started
            own = [{"rpc-url": rpc_url, "task-dir": str(task_dir), "signer-url": url} for url in urls]
            own = [{k: v for k, v in settings.items() if v} for settings in own]
            if simulation:  # one environment for every virtual node: the signers listed by partition-id
                env = {**env, **client_env(rpc_url, task_dir, [url for url in urls if url])}
        link, port = start_superlink({**env, **(server_env or {})}, folder, simulation)
        services.append(link)
        if not simulation:
            services += [start_supernode(port, i, clients, env, folder, own[i]) for i in range(clients)]
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
