"""The task's actors, each with its own key: requester, clients and the aggregator.

Clients hand the aggregator an ONNX model and a signed commitment to the update it implies;
the aggregator checks both before storing them, proves the round, and submits it. The
aggregator's epoch is a sequence of stages recorded in its :class:`SequencerStore`, each of
which can be re-entered after a crash: nothing done is redone, nothing is submitted twice.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from web3 import Web3
from web3.logs import DISCARD

from stakelearn.circuits.krum import krum_round, tag_update
from stakelearn.errors import ProofError, StakeLearnError
from stakelearn.files import write_bytes_atomic
from stakelearn.models.digits import export_onnx
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.models.update_io import load_update
from stakelearn.pipeline.federation import next_global
from stakelearn.pipeline.protocol import Protocol
from stakelearn.pipeline.sequencer import SequencerStore, StoredUpdate
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.commitments import commit
from stakelearn.prover.round import COMMITMENTS, prove_round, verify_round
from stakelearn.prover.steps import PROOF


def quantized_model(model: Path, fixed_point: FixedPoint) -> np.ndarray:
    """A client's ONNX model as the round circuit takes it: its parameters, quantized. Client
    and aggregator both derive it this way, so they agree to the bit."""
    return quantize(load_update(model), fixed_point)


def stored_models(store: SequencerStore, epoch: int, fixed_point: FixedPoint) -> np.ndarray:
    """The ``[n, d]`` quantized models a store holds for ``epoch``, in client order."""
    return np.stack([quantized_model(store.resolve(u.path), fixed_point) for u in store.updates(epoch)])


@dataclass(frozen=True)
class SignedUpdate:
    client: int
    address: str
    model: Path
    commitment: bytes
    signature: bytes


@dataclass(frozen=True)
class Client:
    index: int
    account: object  # eth_account LocalAccount

    def submit(self, protocol: Protocol, prepared: PreparedCircuit, task_id: int, epoch: int,
               trained: np.ndarray, hidden: int, fixed_point: FixedPoint, folder: Path) -> SignedUpdate:
        """Export the trained model, commit to it quantized and sign the commitment."""
        path = folder / f"client-{self.index}.onnx"
        staging = folder / f".client-{self.index}.staging.onnx"
        export_onnx(trained, hidden, staging)
        write_bytes_atomic(path, staging.read_bytes())
        staging.unlink()
        update = tag_update(quantized_model(path, fixed_point), self.index)
        commitment = commit(update, prepared.vk, prepared.settings, prepared.srs.path)
        signature = protocol.sign_update(self.account, task_id, epoch, commitment)
        return SignedUpdate(self.index, self.account.address, path, commitment, signature)


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    scores: list[int]
    selected: list[int]
    flagged: list[int]
    slashed: list[int]
    gas_used: int
    tx_hash: str
    accuracy: float
    prove_seconds: float | None


class Aggregator:
    """Collects, checks, proves and submits each epoch of one task, resumably."""

    def __init__(self, account, protocol: Protocol, prepared: PreparedCircuit, store: SequencerStore,
                 task_id: int, clients: list[str], fixed_point: FixedPoint) -> None:
        self.account = account
        self.protocol = protocol
        self.prepared = prepared
        self.store = store
        self.task_id = task_id
        self.clients = clients  # enrolled addresses, in enrollment order
        self.fixed_point = fixed_point

    @property
    def circuit(self):
        return self.prepared.circuit

    # --- collected ------------------------------------------------------------------------
    def collect(self, epoch: int, model_before: Path, submissions: list[SignedUpdate]) -> None:
        """Check every client's update against its signed commitment, then store the batch."""
        if sorted(s.client for s in submissions) != list(range(self.circuit.n)):
            raise StakeLearnError(f"epoch {epoch}: expected one update from each of the {self.circuit.n} clients")
        stored = []
        for s in sorted(submissions, key=lambda s: s.client):
            update = tag_update(quantized_model(s.model, self.fixed_point), s.client)
            if commit(update, self.prepared.vk, self.prepared.settings, self.prepared.srs.path) != s.commitment:
                raise StakeLearnError(f"epoch {epoch}: client {s.client}'s model does not match its commitment")
            signer = self.protocol.recover_signer(self.task_id, epoch, s.commitment, s.signature)
            if signer != self.clients[s.client]:
                raise StakeLearnError(f"epoch {epoch}: client {s.client}'s commitment is signed by {signer}, "
                                      f"not by its enrolled key {self.clients[s.client]}")
            stored.append(StoredUpdate(s.client, signer, self.store.relative(s.model), s.commitment.hex(), s.signature.hex()))
        self.store.record_collected(epoch, model_before, stored)

    def quantized_updates(self, epoch: int) -> np.ndarray:
        return stored_models(self.store, epoch, self.fixed_point)

    # --- proven ---------------------------------------------------------------------------
    def prove(self, epoch: int, round_dir: Path) -> None:
        updates = self.quantized_updates(epoch)
        stats: dict = {}
        if round_dir.exists():  # proven before a crash, not yet recorded: check it, keep it
            outcome = verify_round(round_dir)
        else:
            sources = [u.path for u in self.store.updates(epoch)]
            outcome = prove_round(updates, self.circuit, round_dir, sources=sources, stats=stats)
        signed = [u.commitment for u in self.store.updates(epoch)]
        if outcome.update_commitments != signed:
            raise ProofError(f"epoch {epoch}: the proof's commitments differ from the clients' signed commitments")
        prove_seconds = stats["prove"].seconds if "prove" in stats else None
        self.store.record_proven(epoch, round_dir, prove_seconds, outcome.scores, outcome.selected)

    # --- submitted ------------------------------------------------------------------------
    def submit(self, epoch: int) -> None:
        """Submit the proven round unless the chain already has it (sent before a crash)."""
        tasks = self.protocol.tasks
        landed = self._round_event(epoch)
        if landed is None:
            _, _, epochs_run, _, global_model, _ = tasks.functions.task(self.task_id).call()
            if epochs_run != epoch - 1:
                raise StakeLearnError(f"the chain is at epoch {epochs_run} of task {self.task_id}, "
                                      f"the store at epoch {epoch}; they belong to different runs")
            record = self.store.epoch(epoch)
            round_dir = self.store.resolve(record["round_dir"])
            commitments = [bytes.fromhex(u.commitment) for u in self.store.updates(epoch)]
            aggregate = bytes.fromhex(json.loads((round_dir / COMMITMENTS).read_text())["aggregate"])
            signatures = [bytes.fromhex(u.signature) for u in self.store.updates(epoch)]
            args = self.protocol.round_args(self.task_id, epoch, global_model, [*commitments, aggregate], signatures,
                                            round_dir / PROOF, self.prepared)
            receipt = self.protocol.chain.send(self.account, tasks.functions.submitRound(args))
            if receipt["status"] != 1:
                name = self.protocol.revert_name(self.account, tasks, "submitRound", args)
                raise StakeLearnError(f"epoch {epoch}: the round was rejected on chain ({name or 'reverted'})")
            landed = self._round_event(epoch)
        event, receipt = landed
        slashed = tasks.events.ClientSlashed().process_receipt(receipt, errors=DISCARD)
        flagged_mask = event["args"]["flaggedMask"]
        self.store.record_submitted(
            epoch, Web3.to_hex(receipt["transactionHash"]), receipt["gasUsed"],
            [i for i in range(self.circuit.n) if flagged_mask >> i & 1],
            sorted(self.clients.index(e["args"]["client"]) for e in slashed),
        )

    def _round_event(self, epoch: int):
        """The RoundSubmitted event of ``epoch`` and its receipt, if the round is on chain."""
        tasks = self.protocol.tasks
        logs = tasks.events.RoundSubmitted().get_logs(
            from_block=0, argument_filters={"taskId": self.task_id, "epoch": epoch})
        if not logs:
            return None
        (event,) = logs
        return event, self.protocol.chain.w3.eth.get_transaction_receipt(event["transactionHash"])

    # --- finalized ------------------------------------------------------------------------
    def finalize(self, epoch: int, model_after: Path, accuracy_of) -> None:
        """Store the next global model (the proven aggregate over m) with its accuracy."""
        record = self.store.epoch(epoch)
        result = krum_round(self.quantized_updates(epoch), self.circuit.params)
        if result.selected != record["selected"]:
            raise StakeLearnError(f"epoch {epoch}: the stored updates no longer give the proven selection")
        updated = next_global(result.total, self.circuit.m, self.fixed_point)
        save_array(model_after, updated)
        self.store.record_finalized(epoch, model_after, accuracy_of(updated))

    def result(self, epoch: int) -> EpochResult:
        r = self.store.epoch(epoch)
        return EpochResult(epoch, [int(v) for v in r["scores"]], r["selected"], r["flagged"], r["slashed"],
                           r["gas_used"], r["tx_hash"], r["accuracy"], r["prove_seconds"])


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save_array(path: Path, values: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, values)
    return write_bytes_atomic(path, buffer.getvalue())
