"""Start and stop a local anvil node (npm @foundry-rs/anvil, installed into tools/).

The node listens on 127.0.0.1 only, on a free port, and is stopped by its process id.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from stakelearn.errors import ToolchainError
from stakelearn.verifier_contracts.solc import TOOLS_DIR

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_binary() -> Path:
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine(), platform.machine())
    path = TOOLS_DIR / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.exists():
        raise ToolchainError(f"anvil not found at {path}: run scripts/setup.sh to install the npm tools")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AnvilNode:
    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        url, data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def start_anvil(port: int | None = None, chain_id: int = 31337, quiet: bool = True) -> AnvilNode:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC."""
    port = port or free_port()
    command = [
        str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
        "--code-size-limit", "24576", "--gas-limit", "30000000",
    ]
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(command, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolchainError(f"anvil exited with code {process.returncode} before it answered on {url}")
        if _answers(url):
            return AnvilNode(process=process, url=url)
        time.sleep(0.1)
    process.kill()
    raise ToolchainError(f"anvil did not answer on {url} within 30 s")


@contextmanager
def running_anvil(**kwargs) -> Iterator[AnvilNode]:
    node = start_anvil(**kwargs)
    try:
        yield node
    finally:
        node.stop()
