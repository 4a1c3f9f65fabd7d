"""A client's remote signer: the one process that holds its staked key.

It runs beside the client's SuperNode (``stakelearn signer``), listens on 127.0.0.1 and signs
one kind of message only: the EIP-712 ``UpdateCommitment(taskId, epoch, commitment)`` of its
protocol on its chain (``contracts.signing``). It reads the chain from its own node, never from
the asker, and signs only

- for a task that is Active and in which its address is enrolled (``clientsOf``),
- for the epoch its node says is open (``epochsRun + 1``),
- one commitment per (task, epoch): asked again for the same commitment it returns the same
  signature; asked for another commitment for a (task, epoch) it signed, it refuses.

The last rule is slashing protection, as Ethereum validators' remote signers keep it (Web3Signer):
signing two commitments for one task and epoch is equivocation, which the protocol slashes, so
an honest client must never do it, whatever code asks. The record (task, epoch, commitment hash,
signature) is committed to a SQLite file before the signature leaves, in one transaction, so a
restarted signer, or a second one on the same file, still refuses.

The HTTP interface (JSON, one line of log per request):

- ``GET /address``: ``{"address", "chain_id", "contract"}``, whom and what it signs for;
- ``POST /sign`` with ``{"task_id", "epoch", "commitment": "0x..."}``: ``{"signature": "0x..."}``,
  or status 403 (refused) or 400 (malformed) with ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.contracts.protocol import Protocol
from stakelearn.pipeline.contracts.types import TaskStatus

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
COMMITMENT_BYTES = 64  # an update commitment: a KZG point (x, y), or a chunk chain and its length
MAX_REQUEST_BYTES = 4096
MAX_ID = 2**63 - 1  # task ids and epochs as SQLite stores them; the chain's are far smaller

SCHEMA = """
CREATE TABLE IF NOT EXISTS signed (
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    signer TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    commitment_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    signed_at REAL NOT NULL,
    PRIMARY KEY (chain_id, contract, signer, task_id, epoch)
)
"""


class SignerRefused(InputError):
    """The signer will not sign this: the message says why."""


class SlashingProtection:
    """The commitments a key signed, one per (chain, contract, task, epoch), in a SQLite file.

    :meth:`sign_once` checks and records in one IMMEDIATE transaction (a write lock on the file),
    committed before the signature is returned, so two signers on one file cannot both sign."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute(SCHEMA)
        except sqlite3.Error as error:
            raise InputError(f"{self.path}: cannot open the slashing-protection file ({error})") from None
        self._lock = threading.Lock()

    def sign_once(self, key: tuple[int, str, str, int, int], commitment: bytes, sign: Callable[[], bytes]) -> bytes:
        """The signature recorded for ``key`` (chain id, contract, signer, task, epoch) if it is
        over the same commitment; else, if ``key`` has no record, ``sign()``'s, recorded first.
        Refuses another commitment. Addresses are recorded checksummed, however they are given,
        so ``stakelearn commit`` and ``stakelearn signer`` sharing a file share its records."""
        chain_id, contract, signer, task_id, epoch = key
        try:
            key = (chain_id, to_checksum_address(contract), to_checksum_address(signer), task_id, epoch)
        except ValueError as error:
            raise InputError(f"not an address: {error}") from None
        digest = keccak(commitment)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT commitment_hash, signature FROM signed "
                    "WHERE chain_id = ? AND contract = ? AND signer = ? AND task_id = ? AND epoch = ?",
                    key,
                ).fetchone()
                if row is not None:
                    if bytes(row[0]) != digest:
                        raise SignerRefused(
                            f"already signed another commitment for task {key[3]} epoch {key[4]} "
                            f"(hash 0x{bytes(row[0]).hex()}): signing a second one is equivocation"
                        )
                    self._db.execute("COMMIT")
                    return bytes(row[1])
                signature = sign()
                self._db.execute(
                    "INSERT INTO signed VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*key, digest, signature, time.time())
                )
                self._db.execute("COMMIT")
                return signature
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def records(self) -> list[tuple]:
        """Every record: (chain id, contract, signer, task, epoch, commitment hash, signature)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT chain_id, contract, signer, task_id, epoch, commitment_hash, signature FROM signed "
                "ORDER BY task_id, epoch"
            ).fetchall()
        return [(*row[:5], bytes(row[5]), bytes(row[6])) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Signer:
    """A client's key, its node's view of the protocol, and its slashing protection."""

    def __init__(self, protocol: Protocol, account, protection: Path) -> None:
        self.protocol, self.account = protocol, account
        self.protection = SlashingProtection(protection)
        self._lock = threading.Lock()  # one signing at a time: the chain reads and the record go together

    @property
    def address(self) -> str:
        return self.account.address

    def identity(self) -> dict:
        return {
            "address": self.address,
            "chain_id": self.protocol.chain.chain_id,
            "contract": self.protocol.tasks.address,
        }

    def sign(self, task_id: int, epoch: int, commitment: bytes) -> bytes:
        """The signature of ``commitment`` for (task, epoch), if the rules allow it (see the
        module); raises SignerRefused naming the rule otherwise."""
        for name, value in (("task_id", task_id), ("epoch", epoch)):
            if type(value) is not int or not 0 < value <= MAX_ID:
                raise InputError(f"{name} must be an integer from 1 to {MAX_ID}, not {value!r}")
        if type(commitment) is not bytes or len(commitment) != COMMITMENT_BYTES:
            raise InputError(f"a commitment is {COMMITMENT_BYTES} bytes")
        with self._lock:
            state = self.protocol.task(task_id)
            if state.status != TaskStatus.ACTIVE:
                raise SignerRefused(f"task {task_id} is {state.status.name.lower()} on this signer's node, not active")
            if self.address not in self.protocol.tasks.functions.clientsOf(task_id).call():
                raise SignerRefused(f"{self.address} is not enrolled in task {task_id}")
            if epoch != state.epochs_run + 1:
                raise SignerRefused(
                    f"task {task_id}'s open epoch is {state.epochs_run + 1} on this signer's node, not {epoch}"
                )
            key = (self.protocol.chain.chain_id, self.protocol.tasks.address, self.address, task_id, epoch)
            return self.protection.sign_once(
                key, commitment, lambda: self.protocol.sign_update(self.account, task_id, epoch, commitment)
            )


def say(line: str) -> None:
    log.info(f"signer: {line}")


class _Handler(BaseHTTPRequestHandler):
    server: SignerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's name
        pass  # one line per request, written by _answer

    def _answer(self, status: int, body: dict, what: str) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        outcome = "ok" if status == 200 else f"{status} {body.get('error', '')}"
        say(f"{self.client_address[0]} {self.command} {self.path}{' ' + what if what else ''}: {outcome}")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/address":
            self._answer(404, {"error": "not found: GET /address or POST /sign"}, "")
            return
        self._answer(200, self.server.signer.identity(), "")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/sign":
            self._answer(404, {"error": "not found: GET /address or POST /sign"}, "")
            return
        what = ""
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= MAX_REQUEST_BYTES:
                raise InputError(f"a request body of 1 to {MAX_REQUEST_BYTES} bytes is expected")
            request = json.loads(self.rfile.read(length))
            if not isinstance(request, dict) or not isinstance(request.get("commitment"), str):
                raise InputError('expected {"task_id": int, "epoch": int, "commitment": "0x..."}')
            task_id, epoch, text = request.get("task_id"), request.get("epoch"), request["commitment"]
            what = f"task {task_id} epoch {epoch} commitment {text[:18]}"
            commitment = bytes.fromhex(text.removeprefix("0x"))
            signature = self.server.signer.sign(task_id, epoch, commitment)
        except SignerRefused as refused:
            self._answer(403, {"error": str(refused)}, what)
        except (InputError, ValueError, UnicodeDecodeError) as error:
            self._answer(400, {"error": f"malformed request: {error}"}, what)
        except (StakeLearnError, OSError) as error:  # the node stopped answering, say
            self._answer(503, {"error": f"cannot check the request against this signer's node: {error}"}, what)
        except Exception as error:  # noqa: BLE001 - one request must never stop the signer
            self._answer(500, {"error": f"{type(error).__name__}: {error}"}, what)
        else:
            self._answer(200, {"signature": "0x" + signature.hex()}, what)


class SignerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, signer: Signer, port: int = 0) -> None:
        self.signer = signer
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


@contextmanager
def running_signer(signer: Signer, port: int = 0) -> Iterator[str]:
    """Serve ``signer`` on 127.0.0.1 in a thread of this process; its URL. For tests and tools
    that hold the chain in process (the embedded chain); a client runs ``stakelearn signer``."""
    server = SignerServer(signer, port)
    thread = threading.Thread(target=server.serve_forever, name="stakelearn-signer", daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class RemoteSigner:
    """The client side of a signer: what ``stakelearn_mod`` asks instead of holding a key."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout
        self._identity: dict | None = None

    def _call(self, request: urllib.request.Request) -> dict:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            try:
                reason = json.loads(error.read())["error"]
            except (ValueError, KeyError, TypeError):
                reason = f"HTTP {error.code}"
            raise SignerRefused(f"the signer at {self.url} refused: {reason}") from None
        except (OSError, ValueError) as error:
            raise InputError(f"no signer answers at {self.url}: {error}") from None

    def identity(self) -> dict:
        """Whom and what the signer signs for: its address, chain id and protocol contract."""
        if self._identity is None:
            self._identity = self._call(urllib.request.Request(f"{self.url}/address"))
        return self._identity

    @property
    def address(self) -> str:
        return self.identity()["address"]

    def sign(self, task_id: int, epoch: int, commitment: bytes) -> bytes:
        body = json.dumps({"task_id": task_id, "epoch": epoch, "commitment": "0x" + commitment.hex()}).encode()
        request = urllib.request.Request(
            f"{self.url}/sign", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        return bytes.fromhex(self._call(request)["signature"].removeprefix("0x"))


def serve_signer(signer: Signer, port: int, say_line: Callable[[str], None] = print) -> int:
    """``stakelearn signer``: serve until SIGTERM or Ctrl-C; 0."""
    import signal

    server = SignerServer(signer, port)

    def stop(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown).start()  # shutdown waits for serve_forever: not from its thread

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    identity = signer.identity()
    say_line(
        f"signer for {identity['address']} (protocol {identity['contract']}, chain id {identity['chain_id']}) "
        f"listening on {server.url}; slashing protection in {signer.protection.path}; SIGTERM or Ctrl-C stops it"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        signer.protection.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say_line("signer stopped")
    return 0
