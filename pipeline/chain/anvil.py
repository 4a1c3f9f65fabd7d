"""Start and stop a local anvil node (npm @foundry-rs/anvil, installed into tools/).

The node listens on 127.0.0.1 only and is stopped by its process (Popen) object, never by name.
"""

from __future__ import annotations

import ctypes
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stakelearn.errors import InputError, ToolchainError
from stakelearn.verifier_contracts.solc import TOOLS_DIR

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
HOST = "127.0.0.1"


def anvil_binary() -> Path:
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine(), platform.machine())
    path = TOOLS_DIR / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if not path.exists():
        raise ToolchainError(f"anvil not found at {path}: run scripts/setup.sh to install the npm tools")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_busy_reason(port: int, host: str = HOST) -> str | None:
    """Why ``port`` cannot be bound on ``host`` (e.g. "Address already in use"), or None if it can."""
    with socket.socket() as probe:
        # SO_REUSEADDR as a server sets it: a port left in TIME_WAIT by a stopped node is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def port_in_use_message(port: int, reason: str, host: str = HOST) -> str:
    return f"port {port} on {host} is in use: {reason}; choose another --port"


def exit_description(code: int) -> str:
    """Popen's return code in words: a negative code is the signal that killed the process."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output: where anvil puts its reason for exiting."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


@dataclass
class AnvilNode:
    process: subprocess.Popen
    url: str
    # anvil's stderr, in an unnamed file rather than a pipe nobody reads (a full pipe would
    # block the node); read back only to say why the node exited.
    errors: IO[bytes] | None = None

    def exit_reason(self) -> str:
        if self.errors is None:
            return "no message"
        self.errors.seek(0)
        return last_line(self.errors.read().decode(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.errors is not None:
            self.errors.close()


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        url,
        data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when the parent dies, even by SIGKILL.

    A preexec_fn is unsafe in a process with threads; only `chain` asks for it, before any start.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_anvil(
    port: int | None = None,
    chain_id: int = 31337,
    quiet: bool = True,
    die_with_parent: bool = False,
    unlocked_accounts: int = 10,
    block_time: int | None = None,
) -> AnvilNode:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC. With ``unlocked_accounts=0``
    it holds no keys, like a public node: every transaction must then be signed locally. With
    ``block_time`` it mines a block every so many seconds, as a live chain does, so that its
    clock (the latest block's time) moves without transactions.

    A port that is taken is an InputError (one line) before anvil starts; an anvil that exits
    before it answers is a ToolchainError with anvil's own last line.
    """
    if port is None:
        port = free_port()
    else:
        reason = port_busy_reason(port)
        if reason is not None:
            raise InputError(port_in_use_message(port, reason))
    command = [
        str(anvil_binary()),
        "--host",
        HOST,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--code-size-limit",
        "24576",
        "--gas-limit",
        "30000000",
        "--accounts",
        str(unlocked_accounts),
    ]
    if block_time is not None:
        command += ["--block-time", str(block_time)]
    errors = tempfile.TemporaryFile()
    preexec = _die_with_parent if die_with_parent and sys.platform.startswith("linux") else None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL if quiet else None, stderr=errors, preexec_fn=preexec)
    node = AnvilNode(process=process, url=f"http://{HOST}:{port}", errors=errors)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                reason = node.exit_reason()
                if "address already in use" in reason.lower():  # taken between our check and anvil's bind
                    raise InputError(port_in_use_message(port, reason))
                raise ToolchainError(
                    f"anvil {exit_description(process.returncode)} before it answered on {node.url}: {reason}"
                )
            # Another node on the port would answer too: only a live anvil of ours counts.
            if _answers(node.url) and process.poll() is None:
                return node
            time.sleep(0.1)
        raise ToolchainError(f"anvil did not answer on {node.url} within 30 s")
    except BaseException:  # an error, or a signal while waiting: never leave anvil behind
        node.stop()
        raise


@contextmanager
def running_anvil(**kwargs) -> Iterator[AnvilNode]:
    node = start_anvil(**kwargs)
    try:
        yield node
    finally:
        node.stop()


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def serve_anvil(port: int, say: Callable[[str], None] = print) -> int:
    """`stakelearn chain`: run anvil in the foreground until a signal stops it or it exits.

    SIGTERM, SIGINT (and SIGHUP unless ignored, as under nohup) stop anvil through its Popen
    object and return 0, so `stakelearn chain &` followed by `kill %1` leaves nothing behind.
    anvil exiting on its own is a ToolchainError with its reason.
    """
    stops = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        stops.append(signal.SIGHUP)
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in stops}
    node: AnvilNode | None = None
    try:
        node = start_anvil(port=port, quiet=False, die_with_parent=True)
        say(f"anvil listening on {node.url} (pid {node.process.pid}); Ctrl-C or SIGTERM stops it")
        code = node.process.wait()
        raise ToolchainError(f"anvil (pid {node.process.pid}) {exit_description(code)}: {node.exit_reason()}")
    except _Stopped as stopped:
        for signum in stops:  # a second signal must not cut the shutdown short
            signal.signal(signum, signal.SIG_IGN)
        if node is not None:
            node.stop()
            say(f"anvil (pid {node.process.pid}) stopped on {stopped}")
        return 0
    finally:
        if node is not None:
            node.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
