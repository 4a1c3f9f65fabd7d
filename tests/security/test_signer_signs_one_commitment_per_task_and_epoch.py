"""Finding 3 (high): the staked key was readable by code the server ships (in a deployment the
ClientApp's code comes from the run's submitter and runs with the SuperNode's environment, where
the key was). Now the key lives in a signer process beside the SuperNode (``stakelearn signer``)
that reads its own node and signs only EIP-712 update commitments: for a task its address is
enrolled in, that is Active, for the epoch its node says is open, and at most one commitment per
(task, epoch), recorded in a SQLite file before the signature leaves, so a restarted signer still
refuses a second one. Signing two commitments for one task and epoch is equivocation, which the
protocol slashes: this guard keeps an honest client unslashable whatever code asks it."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.pipeline.node.signer import RemoteSigner, Signer, SignerRefused, SlashingProtection, running_signer

from ..flower.helpers import served

STAKELEARN = Path(sys.executable).parent / "stakelearn"
YEAR = 365 * 24 * 3600
ONE, OTHER = b"\x11" * 64, b"\x22" * 64  # two commitments (a commitment is 64 bytes)


@pytest.fixture
def task_id(world):
    world.task_id = world.start_task()
    return world.task_id


def test_one_commitment_per_task_and_epoch_even_after_a_restart(world, task_id, tmp_path):
    protection = tmp_path / "protection.sqlite"
    signer = Signer(world.protocol, world.clients[0], protection)
    first = signer.sign(task_id, 1, ONE)
    assert world.protocol.recover_signer(task_id, 1, ONE, first) == world.clients[0].address
    assert signer.sign(task_id, 1, ONE) == first  # asked again: the same signature
    with pytest.raises(SignerRefused, match="already signed another commitment for task 1 epoch 1"):
        signer.sign(task_id, 1, OTHER)
    ((*where, digest, signature),) = signer.protection.records()
    assert tuple(where[3:]) == (task_id, 1)
    assert (digest, signature) == (keccak(ONE), first)
    signer.protection.close()

    restarted = Signer(world.protocol, world.clients[0], protection)  # a new process on the same file
    with pytest.raises(SignerRefused, match="already signed another commitment"):
        restarted.sign(task_id, 1, OTHER)
    assert restarted.sign(task_id, 1, ONE) == first


def test_two_signers_on_one_file_sign_one_commitment(world, task_id, tmp_path):
    """Two signer processes started on one file by mistake, asked at once for two commitments:
    the IMMEDIATE transaction lets one sign, the other refuses."""
    signers = [Signer(world.protocol, world.clients[0], tmp_path / "shared.sqlite") for _ in range(2)]
    outcomes, start = [], threading.Barrier(2)

    def ask(signer, commitment):
        start.wait()
        try:
            outcomes.append(("signed", signer.sign(task_id, 1, commitment)))
        except SignerRefused as refused:
            outcomes.append(("refused", str(refused)))

    threads = [threading.Thread(target=ask, args=pair) for pair in zip(signers, (ONE, OTHER))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(kind for kind, _ in outcomes) == ["refused", "signed"]
    assert len(SlashingProtection(tmp_path / "shared.sqlite").records()) == 1


def test_it_signs_only_open_epochs_of_active_tasks_it_is_enrolled_in(world, task_id, tmp_path):
    signer = Signer(world.protocol, world.clients[0], tmp_path / "protection.sqlite")
    for epoch in (2, 3):
        with pytest.raises(SignerRefused, match=f"task 1's open epoch is 1 on this signer's node, not {epoch}"):
            signer.sign(task_id, epoch, ONE)
    open_task = world.create_task()  # posted, nobody enrolled yet: Open, not Active
    assert world.protocol.task(open_task).status == TaskStatus.OPEN
    with pytest.raises(SignerRefused, match=f"task {open_task} is open on this signer's node, not active"):
        signer.sign(open_task, 1, ONE)
    with pytest.raises(SignerRefused, match="task 99 is none on this signer's node, not active"):
        signer.sign(99, 1, ONE)  # no such task
    outsider = Signer(world.protocol, Account.create(), tmp_path / "outsider.sqlite")
    with pytest.raises(SignerRefused, match="is not enrolled in task 1"):
        outsider.sign(task_id, 1, ONE)
    for commitment in (b"", ONE[:63], ONE + b"\0"):
        with pytest.raises(ValueError, match="a commitment is 64 bytes"):
            signer.sign(task_id, 1, commitment)
    # No round within the round period: anyone ends training, and with no epoch run the task is cancelled.
    world.travel_to(world.chain.w3.eth.get_block("latest")["timestamp"] + YEAR)
    world.send(world.clients[1], world.protocol.tasks, "endTraining", task_id)
    with pytest.raises(SignerRefused, match="task 1 is cancelled on this signer's node, not active"):
        signer.sign(task_id, 1, ONE)
    assert signer.protection.records() == []


def post(url: str, body: bytes, path: str = "/sign") -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_over_http_it_answers_only_its_address_and_commitment_signatures(world, task_id, tmp_path):
    signer = Signer(world.protocol, world.clients[0], tmp_path / "protection.sqlite")
    with running_signer(signer) as url:
        assert url.startswith("http://127.0.0.1:")
        remote = RemoteSigner(url)
        assert remote.identity() == {
            "address": world.clients[0].address,
            "chain_id": world.chain.chain_id,
            "contract": world.protocol.tasks.address,
        }
        assert remote.sign(task_id, 1, ONE) == signer.sign(task_id, 1, ONE)
        with pytest.raises(SignerRefused, match=f"the signer at {url} refused: already signed another commitment"):
            remote.sign(task_id, 1, OTHER)
        # Anything else is refused: other paths, other typed data, a transaction, garbage.
        transaction = {"to": world.protocol.tasks.address, "value": 10**18, "data": "0x", "nonce": 0}
        assert post(url, json.dumps(transaction).encode(), "/sign-transaction")[0] == 404
        typed = {"domain": {"name": "Permit"}, "message": {"value": 1}, "primaryType": "Permit"}
        for body in (json.dumps(typed), json.dumps(transaction), "[1, 2]", "not json", json.dumps({"commitment": 5})):
            status, answer = post(url, body.encode())
            assert status == 400 and answer["error"].startswith("malformed request"), (body, answer)
        status, answer = post(url, json.dumps({"task_id": 1, "epoch": 1, "commitment": "0x" + "ab" * 40}).encode())
        assert status == 400 and "a commitment is 64 bytes" in answer["error"]
        status, answer = post(url, json.dumps({"task_id": "1", "epoch": 1, "commitment": "0x" + ONE.hex()}).encode())
        assert status == 400 and "task_id must be an integer" in answer["error"]
    assert len(signer.protection.records()) == 1


def start_signer(rpc_url: str, contract: str, protection: Path, env: dict, log: Path, *key_options: str):
    """``stakelearn signer`` on a free port; the process and the URL it prints."""
    command = [str(STAKELEARN), "signer", "--rpc-url", rpc_url, "--contract", contract]
    command += ["--slashing-protection", str(protection), *key_options]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text().splitlines():
            if "listening on http://127.0.0.1:" in line:
                return process, line.split("listening on ")[1].split(";")[0]
        time.sleep(0.2)
    process.kill()
    raise AssertionError(log.read_text())


def stop(process) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_the_signer_command_keeps_its_record_across_restarts(world, task_id, tmp_path):
    """``stakelearn signer`` as a client runs it: its key from its environment (or a keystore),
    its node from --rpc-url (the embedded chain over JSON-RPC here), a free port on 127.0.0.1;
    stopped by SIGTERM and started again on the same file, it still refuses a second commitment."""
    client, protection = world.clients[0], tmp_path / "protection.sqlite"
    contract = world.protocol.tasks.address
    env = {**os.environ, "CLIENT_KEY": client.key.hex()}
    with served(world.chain) as rpc_url:
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        process, url = start_signer(rpc_url, contract, protection, env, first_log, "--private-key-env", "CLIENT_KEY")
        try:
            assert RemoteSigner(url).address == client.address
            first = RemoteSigner(url).sign(task_id, 1, ONE)
        finally:
            assert stop(process) == 0
        keystore = tmp_path / "key.json"
        keystore.write_text(json.dumps(Account.encrypt(client.key, "pass phrase")))
        env = {**os.environ, "STAKELEARN_KEYSTORE_PASSWORD": "pass phrase"}
        process, url = start_signer(rpc_url, contract, protection, env, second_log, "--keystore", str(keystore))
        try:
            with pytest.raises(SignerRefused, match="already signed another commitment for task 1 epoch 1"):
                RemoteSigner(url).sign(task_id, 1, OTHER)
            assert RemoteSigner(url).sign(task_id, 1, ONE) == first
        finally:
            assert stop(process) == 0
    log = first_log.read_text() + second_log.read_text()
    requests = [line for line in log.splitlines() if line.startswith("signer: 127.0.0.1 ")]
    assert len(requests) == 4, log  # one line per request: GET /address, then 3 POST /sign
    assert sum("403 already signed another commitment" in line for line in requests) == 1
    assert client.key.hex().removeprefix("0x") not in log


def test_the_signer_command_refuses_a_missing_key_in_one_line(world, tmp_path):
    with served(world.chain) as rpc_url:
        result = subprocess.run(
            [str(STAKELEARN), "signer", "--rpc-url", rpc_url, "--contract", world.protocol.tasks.address]
            + ["--private-key-env", "NO_SUCH_KEY", "--slashing-protection", str(tmp_path / "p.sqlite")],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != "NO_SUCH_KEY"},
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "stakelearn: error: no key: put the private key in the environment variable NO_SUCH_KEY "
        "(never on the command line), or give --keystore"
    ]


def test_the_record_is_shared_however_the_addresses_are_spelled(world, task_id, tmp_path):
    """``stakelearn commit`` and ``stakelearn signer`` may share one file; a contract address given
    in lower case is the same contract."""
    protection = tmp_path / "shared.sqlite"
    signer = Signer(world.protocol, world.clients[0], protection)
    signer.sign(task_id, 1, ONE)
    key = (world.chain.chain_id, world.protocol.tasks.address.lower(), world.clients[0].address.lower(), task_id, 1)
    with pytest.raises(SignerRefused, match="already signed another commitment"):
        SlashingProtection(protection).sign_once(key, OTHER, lambda: pytest.fail("signed a second commitment"))
