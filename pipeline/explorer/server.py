"""The explorer's web server (aiohttp): a read-only page on 127.0.0.1 and the JSON it draws.

GET /                     the page (page/index.html, explorer.js, explorer.css)
GET /vendor/echarts.js    Apache ECharts, served from the npm install in tools/ (no CDN)
GET /api/tasks            the protocol's tasks
GET /api/tasks/{id}       one task (explorer.view.task_view), with the run folder's figures

It holds no key and sends no transaction, and answers only requests addressed to 127.0.0.1 or
localhost by name (a page elsewhere cannot read it through DNS rebinding). Every read runs on one worker thread, under
``Explorer.lock``: a node's client and the embedded EVM are not shared across threads. A task's
view is kept until a new block arrives, so that pages polling every few seconds cost one
block-number call each. A node that does not answer, an unknown task or a folder that does not
verify is one line in the JSON's ``error`` (the page shows it), never a traceback.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from requests.exceptions import RequestException
from web3.exceptions import Web3Exception

from stakelearn.errors import InputError, StakeLearnError, ToolchainError
from stakelearn.pipeline.contracts.protocol import Protocol
from stakelearn.pipeline.explorer.view import audited, protocol_view, run_accuracy, task_view
from stakelearn.verifier_contracts.solc import TOOLS_DIR

PAGE_DIR = Path(__file__).parent / "page"
ECHARTS = TOOLS_DIR / "node_modules" / "echarts" / "dist" / "echarts.min.js"
NODE_ERRORS = (OSError, RequestException, Web3Exception)


class NodeUnreachable(StakeLearnError):
    """The node did not answer (or answered nonsense): the page says so and keeps polling.
    ``connect`` raises it too."""


@dataclass
class Explorer:
    """The page's data. ``connect`` attaches the protocol (again after the node failed);
    ``run_dir`` is an optional run folder whose figures are shown once it checks against the
    chain; ``refresh`` is how often the page polls, in seconds."""

    connect: Callable[[], Protocol]
    node: str  # how the page names the node
    run_dir: Path | None = None
    refresh: float = 5.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _protocol: Protocol | None = None
    _views: dict = field(default_factory=dict)  # task id -> (block, view)
    _run_json: dict | None = None
    _run_circuits: tuple | None = None
    _run_figures_at: tuple | None = None  # (epochs, the run folder's figures or why they are not shown)

    def overview(self) -> dict:
        return self._read(lambda protocol: protocol_view(protocol))

    def task(self, task_id: int) -> dict:
        return self._read(lambda protocol: self._task(protocol, task_id))

    def _task(self, protocol: Protocol, task_id: int) -> dict:
        block = protocol.chain.w3.eth.block_number
        cached = self._views.get(task_id)
        if cached is not None and cached[0] == block:
            return cached[1]
        ours = self.run_dir is not None and task_id == self._run()["task_id"]
        circuits = self._circuits() if ours else None  # the audit then compares the verifiers' code too
        audit = audited(protocol, task_id, circuits)
        view = task_view(protocol, task_id, audit)
        if ours:
            view["run"] = self._run_figures(protocol, audit.rounds)
        self._views[task_id] = (block, view)
        return view

    def _run(self) -> dict:
        """The run folder's run.json, read once."""
        if self._run_json is None:
            from stakelearn.pipeline.node.run_folder import load_run

            self._run_json = load_run(self.run_dir)
        return self._run_json

    def _circuits(self):
        """The run folder's round and prepared accuracy circuit, made once."""
        if self._run_circuits is None:
            from stakelearn.pipeline.node.run_folder import run_round

            self._run_circuits = run_round(self._run())
        return self._run_circuits

    def _run_figures(self, protocol: Protocol, rounds: list[dict]) -> dict:
        """The run folder's test accuracy per epoch, or why it is not shown; redone per new epoch."""
        if self._run_figures_at is None or self._run_figures_at[0] != len(rounds):
            try:
                accuracy = run_accuracy(self.run_dir, protocol, self._circuits()[0], rounds)
                figures = {"folder": str(self.run_dir), "test_accuracy": accuracy}
            except StakeLearnError as error:
                figures = {"folder": str(self.run_dir), "error": one_line(error)}
            self._run_figures_at = (len(rounds), figures)
        return self._run_figures_at[1]

    def _read(self, read: Callable[[Protocol], dict]) -> dict:
        with self.lock:
            try:
                if self._protocol is None:
                    self._protocol = self.connect()
                return read(self._protocol)
            except NODE_ERRORS as error:
                self._protocol = None
                raise NodeUnreachable(f"the node at {self.node} does not answer: {one_line(error)}") from None


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def make_app(explorer: Explorer, worker: ThreadPoolExecutor) -> web.Application:
    async def off_loop(read: Callable[[], dict]) -> web.Response:
        try:
            data = await asyncio.get_running_loop().run_in_executor(worker, read)
        except NodeUnreachable as error:
            return web.json_response({"error": str(error), "refresh": explorer.refresh}, status=502)
        except StakeLearnError as error:
            return web.json_response({"error": one_line(error), "refresh": explorer.refresh}, status=404)
        return web.json_response({**data, "refresh": explorer.refresh})

    async def tasks(_: web.Request) -> web.Response:
        return await off_loop(explorer.overview)

    async def task(request: web.Request) -> web.Response:
        text = request.match_info["task_id"]
        if not text.isdigit():
            error = f"'{text}' is not a task id: a task is named by its number, as in ?task=1"
            return web.json_response({"error": error, "refresh": explorer.refresh}, status=404)
        return await off_loop(lambda: explorer.task(int(text)))

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "index.html")

    async def echarts(_: web.Request) -> web.FileResponse:
        return web.FileResponse(ECHARTS)

    @web.middleware
    async def only_loopback_names(request: web.Request, handler):
        # DNS rebinding: a page from elsewhere whose name resolves to 127.0.0.1 sends its own Host.
        if request.host.rsplit(":", 1)[0] not in ("127.0.0.1", "localhost"):
            return web.json_response({"error": f"this explorer answers 127.0.0.1 only, not {request.host}"}, status=421)
        return await handler(request)

    app = web.Application(middlewares=[only_loopback_names])
    app.add_routes(
        [
            web.get("/", page),
            web.get("/vendor/echarts.js", echarts),
            web.get("/api/tasks", tasks),
            web.get("/api/tasks/{task_id}", task),
            web.static("/static", PAGE_DIR),
        ]
    )
    return app


class RunningServer:
    """The explorer served on 127.0.0.1 from a thread of its own until ``stop``."""

    def __init__(self, explorer: Explorer, port: int = 0) -> None:
        if not ECHARTS.is_file():
            raise ToolchainError(f"ECharts not found at {ECHARTS}: run scripts/setup.sh to install the npm tools")
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError as error:
            self._sock.close()
            raise InputError(f"port {port} on 127.0.0.1 is taken ({error.strerror}): choose another --port") from None
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explorer-chain")
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(make_app(explorer, self._worker), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
        self._thread = threading.Thread(target=self._loop.run_forever, name="explorer-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._worker.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_) -> None:
        self.stop()
