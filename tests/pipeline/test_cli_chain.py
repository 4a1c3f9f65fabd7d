"""`stakelearn chain` run as the README runs it (`stakelearn chain &`, then a signal), and the
CLI's help and version: every process started here is stopped by its PID."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stakelearn.pipeline.chain.anvil import _answers, free_port, port_busy_reason

from .test_cli import assert_one_line_error

CLI = [sys.executable, "-m", "stakelearn.pipeline.cli"]


def run_cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def children(pid: int) -> set[int]:
    """The child processes of ``pid``, from /proc (Linux)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def is_anvil(pid: int) -> bool:
    try:
        return b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_for_listening(chain: subprocess.Popen, stdout: Path, url: str) -> int:
    """anvil's pid, once `chain` says it listens and anvil answers JSON-RPC."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert chain.poll() is None, f"chain exited with {chain.returncode}"
        match = re.search(r"anvil listening on (\S+) \(pid (\d+)\)", stdout.read_text(errors="replace"))
        if match and _answers(url):
            assert match.group(1) == url
            return int(match.group(2))
        time.sleep(0.2)
    raise AssertionError(f"chain did not listen on {url} within 60 s")


@pytest.fixture
def chain_process(tmp_path):
    """Start `stakelearn chain --port P`; yields (process, port, stdout file, anvil pids seen)."""
    port = free_port()
    stdout, stderr = tmp_path / "chain.out", tmp_path / "chain.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        chain = subprocess.Popen([*CLI, "chain", "--port", str(port)], stdout=out, stderr=err)
    anvils: set[int] = set()
    try:
        yield chain, port, stdout, stderr, anvils
    finally:
        anvils.update(children(chain.pid))
        if chain.poll() is None:
            chain.kill()
            chain.wait()
        for pid in anvils:
            if is_anvil(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.anvil
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_chain_stops_its_anvil(chain_process, signum):
    chain, port, stdout, _, anvils = chain_process
    anvil = wait_for_listening(chain, stdout, f"http://127.0.0.1:{port}")
    anvils.add(anvil)
    assert anvil in children(chain.pid)
    chain.send_signal(signum)
    assert chain.wait(timeout=30) == 0
    assert not Path(f"/proc/{anvil}").exists(), "anvil outlived `stakelearn chain`"
    assert port_busy_reason(port) is None
    assert f"anvil (pid {anvil}) stopped on {signal.Signals(signum).name}" in stdout.read_text()


@pytest.mark.anvil
def test_chain_exits_non_zero_with_the_reason_when_anvil_dies(chain_process):
    chain, port, stdout, stderr, anvils = chain_process
    anvil = wait_for_listening(chain, stdout, f"http://127.0.0.1:{port}")
    anvils.add(anvil)
    os.kill(anvil, signal.SIGKILL)  # our own grandchild, by its PID
    assert chain.wait(timeout=30) == 1
    lines = stderr.read_text().strip().splitlines()
    assert lines == [f"stakelearn: error: anvil (pid {anvil}) was killed by SIGKILL: no message"]


@pytest.mark.anvil
def test_a_second_chain_on_the_same_port_refuses(chain_process):
    """The first node answers on the port: the second `chain` must not take it for its own."""
    chain, port, stdout, _, anvils = chain_process
    anvils.add(wait_for_listening(chain, stdout, f"http://127.0.0.1:{port}"))
    result = run_cli("chain", "--port", port)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is in use: Address already in use; choose another --port")
    assert "listening" not in result.stdout and chain.poll() is None


def test_chain_on_a_taken_port_says_so_and_exits_1():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = run_cli("chain", "--port", port)
        assert_one_line_error(
            result, f"port {port} on 127.0.0.1 is in use: Address already in use; choose another --port"
        )
        assert result.returncode == 1 and "listening" not in result.stdout
        assert time.monotonic() - started < 30  # refused before any anvil starts


def test_version_names_stakelearn_and_ezkl():
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stakelearn {version('stakelearn')} (ezkl {version('ezkl')})"


@pytest.mark.parametrize("command, argument", [("verify", "DIR"), ("chain", "--port PORT")])
def test_every_argument_has_help(command, argument):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    described = result.stdout.split("\n\n", 1)[1]  # past the usage lines, which name the argument too
    line = next(line for line in described.splitlines() if line.strip().startswith(argument))
    assert len(line.strip()) > len(argument) + 10, result.stdout  # the help text follows on its line
