"""What the Flower tests share: the suite's small task as Flower messages (arrays, train
instructions, committed replies), and an embedded py-evm chain served over JSON-RPC on
127.0.0.1, so that what takes a node's URL (a Flower client's node config, ``stakelearn signer
--rpc-url``) can be pointed at it: the client's own node, or the node an aggregator would rather
the clients read."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
from flwr.app import Array, ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from web3 import Web3

from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.flower import ProvenMultiKrum, commit_reply
from stakelearn.pipeline.flower.arrays import layout_of
from stakelearn.pipeline.flower.client import COMMITMENT

FIXED_POINT = FixedPoint(scale_bits=7, clip=1.0)  # the small circuit's max_int 128


def as_arrays(update: np.ndarray) -> ArrayRecord:
    values = update / 2.0**FIXED_POINT.scale_bits
    return ArrayRecord({"weight": Array(values[:12].reshape(3, 4)), "bias": Array(values[12:])})


def reply(content: RecordDict, node: int) -> Message:
    """A train reply as the SuperLink hands it to the ServerApp."""
    metadata = Metadata(
        run_id=1,
        message_id=f"reply-{node}",
        src_node_id=node,
        dst_node_id=0,
        reply_to_message_id=f"train-{node}",
        group_id="1",
        created_at=0.0,
        ttl=3600.0,
        message_type="train",
    )
    return Message(content, metadata=metadata)


def signed_reply(task, signer, update: np.ndarray, node: int, epoch: int = 1) -> Message:
    sent, signed = commit_reply(task, signer, epoch, as_arrays(update))
    signed["seconds"] = 0.25
    metrics = MetricRecord({"num-examples": 10})
    return reply(RecordDict({"arrays": sent, "metrics": metrics, COMMITMENT: signed}), node)


def strategy_for(task, world, tmp_path) -> ProvenMultiKrum:
    strategy = ProvenMultiKrum(task, world.requester, tmp_path / "rounds", num_malicious_nodes=1)
    strategy.layout = layout_of(as_arrays(np.zeros(16)))  # as configure_train records it
    return strategy


class _Handler(BaseHTTPRequestHandler):
    server: _ChainServer

    def log_message(self, format, *args) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        calls = request if isinstance(request, list) else [request]
        with self.server.lock:
            answers = [self.server.answer(call) for call in calls]
        payload = Web3.to_json(answers if isinstance(request, list) else answers[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _ChainServer(HTTPServer):
    def __init__(self, chain: Chain) -> None:
        self.chain, self.lock = chain, threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def answer(self, call: dict) -> dict:
        params = call.get("params", [])
        if call["method"] in ("eth_call", "eth_estimateGas") and "from" not in params[0]:
            # A node fills the sender in; eth-tester needs one that can pay for the call's gas.
            params = [{**params[0], "from": self.chain.w3.eth.accounts[0]}, *params[1:]]
        response = dict(self.chain.w3.provider.make_request(call["method"], params))
        response["id"] = call.get("id")
        response.setdefault("jsonrpc", "2.0")
        return response


@contextmanager
def served(chain: Chain) -> Iterator[str]:
    """``chain`` (embedded) answering JSON-RPC at the URL this yields, until the block ends."""
    server = _ChainServer(chain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chain_task(url: str, protocol_address: str, task_id: int, prepared, fixed_point):
    """The task as a client opens it from a node's URL (``open_task``'s way: ``Chain.rpc`` and
    ``attach_protocol``), with the suite's small circuit, which no run.json describes."""
    from stakelearn.pipeline.contracts.protocol import attach_protocol
    from stakelearn.pipeline.flower.task import ProvenTask
    from stakelearn.prover.rounds import OneProofRound

    protocol = attach_protocol(Chain.rpc(url), {"protocol": protocol_address})
    return ProvenTask(protocol, task_id, OneProofRound(prepared), fixed_point)


def train_message(content, node: int = 7):
    """A train instruction as the SuperNode hands it to the ClientApp."""
    metadata = Metadata(
        run_id=1,
        message_id=f"train-{node}",
        src_node_id=0,
        dst_node_id=node,
        reply_to_message_id="",
        group_id="1",
        created_at=0.0,
        ttl=3600.0,
        message_type="train",
    )
    return Message(content, metadata=metadata)


def context(node_config: dict, run_config: dict):
    from flwr.app import Context

    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config=run_config)
