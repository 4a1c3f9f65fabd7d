"""The aggregator's steps: collect and check the clients' signed updates, prove the round,
submit it, and keep the next global model.

The aggregator's epoch is a sequence of stages recorded in its :class:`SequencerStore`, each of
which can be re-entered after a crash: nothing done is redone, nothing is submitted twice. The
round folder it proves holds the clients' signed commitments (``signed.json``), so a folder is
submitted the same way by the demo and by ``stakelearn submit``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eth_utils import to_hex

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError, ProofError, StakeLearnError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION, chunk_calls, round_session, stage_chunks
from stakelearn.pipeline.contracts.protocol import Protocol, round_args
from stakelearn.pipeline.contracts.signing import ABSENT_SIGNATURE, signed_record
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.node.client import SignedUpdate, quantized_model, update_commitment
from stakelearn.pipeline.node.run_folder import save_array
from stakelearn.pipeline.node.store import SequencerStore, StoredUpdate
from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.chunked_round import (
    COMBINE,
    chunk_proof_folders,
    chunked_circuits,
    chunked_commitments,
    is_chunked_round,
    prove_chunked_round,
    verify_chunked_round,
)
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.round import SIGNED, load_round, prove_round, round_commitments, verify_round
from stakelearn.prover.steps import PROOF, VKA
from stakelearn.verifier_contracts.build import load_artifact


def stored_models(store: SequencerStore, epoch: int, fixed_point: FixedPoint) -> np.ndarray:
    """The ``[n, d]`` quantized models a store holds for ``epoch``, in client order."""
    return np.stack([quantized_model(store.resolve(u.path), fixed_point) for u in store.updates(epoch)])


def folder_round_args(folder: Path, task_id: int, epoch: int, previous_model: bytes) -> tuple:
    """submitRound's Round from a verified round folder with its clients' signed commitments
    (an absent slot gets the all-zero signature). A chunked round's proof is its combine proof."""
    if is_chunked_round(folder):
        manifest, _, combine = chunked_circuits(folder)
        n, proof, vka = manifest["combine_circuit"]["circuit"]["n"], folder / COMBINE / PROOF, combine.vka
        commitments = chunked_commitments(folder)
    else:
        manifest, _, _ = load_round(folder)
        n, proof, vka = manifest["circuit"]["n"], folder / PROOF, folder / VKA
        commitments = round_commitments(folder)
    if not (folder / SIGNED).exists():
        raise InputError(f"{folder} has no {SIGNED}: prove with the clients' --signed commitments to submit it")
    signed = {record["slot"]: record for record in json.loads((folder / SIGNED).read_text())}
    for record in signed.values():
        if (record["task_id"], record["epoch"]) != (task_id, epoch):
            raise InputError(
                f"slot {record['slot']} signed for task {record['task_id']} epoch {record['epoch']}, "
                f"not task {task_id} epoch {epoch}"
            )
    signatures = [bytes.fromhex(signed[i]["signature"]) if i in signed else ABSENT_SIGNATURE for i in range(n)]
    return round_args(task_id, epoch, previous_model, commitments, signatures, proof, vka)


def submit_round(
    protocol: Protocol,
    account,
    task_id: int,
    epoch: int,
    folder: Path,
    chunks_per_transaction: int = CHUNKS_PER_TRANSACTION,
) -> dict:
    """``stakelearn submit``: send a proven round folder; return the receipt. The folder may come
    from anywhere, so it is verified before anything is sent (the aggregator's own folders were
    verified when proven). A chunked round's chunk proofs are staged first, at most
    ``chunks_per_transaction`` per transaction, resuming after those the chain already holds."""
    verify_chunked_round(folder) if is_chunked_round(folder) else verify_round(folder)
    receipt, _ = send_round(protocol, account, task_id, epoch, folder, chunks_per_transaction)
    return receipt


def send_round(
    protocol: Protocol,
    account,
    task_id: int,
    epoch: int,
    folder: Path,
    chunks_per_transaction: int = CHUNKS_PER_TRANSACTION,
) -> tuple[dict, int]:
    """Send a verified round folder: a chunked round's chunk proofs first (resuming after those
    the chain already holds), then ``submitRound`` over the chain's current global model. The
    receipt, and the gas of the staging transactions."""
    staging = (
        stage_round_chunks(protocol, account, task_id, epoch, folder, chunks_per_transaction)
        if is_chunked_round(folder)
        else []
    )
    previous = protocol.task(task_id).global_model
    return protocol.execute(account, "submitRound", folder_round_args(folder, task_id, epoch, previous)), sum(staging)


def stage_round_chunks(
    protocol: Protocol, account, task_id: int, epoch: int, folder: Path, per_transaction: int
) -> list[int]:
    """Stage a chunked round folder's chunk proofs with the task's ChunkedRoundVerifier; return
    the gas of each transaction. Progress goes to stderr, a line per transaction."""
    manifest, chunk, _ = chunked_circuits(folder)
    verifier = protocol.chain.contract(
        protocol.task_params(task_id).verifier, load_artifact("ChunkedRoundVerifier").abi
    )
    calls = chunk_calls(chunk_proof_folders(folder, manifest["chunks"]), chunk.vka)

    def say(done: int, total: int, gas: int) -> None:
        print(f"staging chunk proofs: {done}/{total} on chain ({gas:,} gas)", file=sys.stderr, flush=True)

    session = round_session(task_id, epoch)
    return stage_chunks(protocol.chain, account, verifier, session, calls, chunk.vka, per_transaction, say)


def proving_seconds(stats: dict, chunked: bool) -> float | None:
    """The prover's seconds of a round just proven: its one proof's, or the sum of its chunks'."""
    if chunked:
        return sum(s.prove_seconds for s in stats.values()) if stats else None
    return stats["prove"].seconds if "prove" in stats else None


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

    def __init__(
        self,
        account,
        protocol: Protocol,
        prepared: PreparedCircuit,
        store: SequencerStore,
        task_id: int,
        clients: list[str],
        fixed_point: FixedPoint,
    ) -> None:
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
            if update_commitment(quantized_model(s.model, self.fixed_point), s.client, self.prepared) != s.commitment:
                raise StakeLearnError(f"epoch {epoch}: client {s.client}'s model does not match its commitment")
            signer = self.protocol.recover_signer(self.task_id, epoch, s.commitment, s.signature)
            if signer != self.clients[s.client]:
                raise StakeLearnError(
                    f"epoch {epoch}: client {s.client}'s commitment is signed by {signer}, "
                    f"not by its enrolled key {self.clients[s.client]}"
                )
            stored.append(
                StoredUpdate(s.client, signer, self.store.relative(s.model), s.commitment.hex(), s.signature.hex())
            )
        self.store.record_collected(epoch, model_before, stored)

    def quantized_updates(self, epoch: int) -> np.ndarray:
        return stored_models(self.store, epoch, self.fixed_point)

    # --- proven ---------------------------------------------------------------------------
    def prove(self, epoch: int, round_dir: Path) -> None:
        """Prove the stored batch into ``round_dir`` with the clients' signed commitments."""
        updates = self.store.updates(epoch)
        stats: dict = {}
        chunked = isinstance(self.circuit, ChunkCircuit)
        if round_dir.exists():  # proven before a crash, not yet recorded: check it, keep it
            outcome = verify_chunked_round(round_dir) if chunked else verify_round(round_dir)
        else:
            signed = [
                signed_record(
                    u.client,
                    u.address,
                    self.protocol.update_commitment(self.task_id, epoch, bytes.fromhex(u.commitment)),
                    bytes.fromhex(u.signature),
                )
                for u in updates
            ]
            sources = [u.path for u in updates]
            if chunked:  # a killed prover's proven chunks are kept in round_dir's .partial twin
                outcome = prove_chunked_round(
                    self.quantized_updates(epoch),
                    self.circuit,
                    round_dir,
                    signed=signed,
                    sources=sources,
                    chunk_stats=stats,
                )
            else:
                outcome = prove_round(
                    self.quantized_updates(epoch), self.circuit, round_dir, sources=sources, stats=stats, signed=signed
                )
        if outcome.update_commitments != [u.commitment for u in updates]:
            raise ProofError(f"epoch {epoch}: the proof's commitments differ from the clients' signed commitments")
        prove_seconds = proving_seconds(stats, chunked)
        self.store.record_proven(epoch, round_dir, prove_seconds, outcome.scores, outcome.selected)

    # --- submitted ------------------------------------------------------------------------
    def submit(self, epoch: int) -> None:
        """Submit the proven round unless the chain already has it (sent before a crash)."""
        landed = self._round_event(epoch)
        staging_gas = 0  # a chunked round's staging transactions sent by this call (none if it landed before)
        if landed is None:
            state = self.protocol.task(self.task_id)
            if state.epochs_run != epoch - 1:
                raise StakeLearnError(
                    f"the chain is at epoch {state.epochs_run} of task {self.task_id}, "
                    f"the store at epoch {epoch}; they belong to different runs"
                )
            round_dir = self.store.resolve(self.store.epoch(epoch)["round_dir"])
            _, staging_gas = send_round(self.protocol, self.account, self.task_id, epoch, round_dir)
            landed = self._round_event(epoch)
        event, receipt = landed
        slashed = self.protocol.events_in(receipt, "ClientSlashed")
        flagged_mask = event["args"]["flaggedMask"]
        self.store.record_submitted(
            epoch,
            to_hex(receipt["transactionHash"]),
            receipt["gasUsed"] + staging_gas,
            [i for i in range(self.circuit.n) if flagged_mask >> i & 1],
            sorted(self.clients.index(e["args"]["client"]) for e in slashed),
        )

    def _round_event(self, epoch: int):
        """The RoundSubmitted event of ``epoch`` and its receipt, if the round is on chain."""
        logs = self.protocol.logs("RoundSubmitted", taskId=self.task_id, epoch=epoch)
        if not logs:
            return None
        (event,) = logs
        return event, self.protocol.chain.receipt(event["transactionHash"])

    # --- finalized ------------------------------------------------------------------------
    def finalize(self, epoch: int, model_after: Path, accuracy_of) -> None:
        """Store the next global model (the proven aggregate over m) with its accuracy."""
        record = self.store.epoch(epoch)
        result = krum_round(self.quantized_updates(epoch), self.circuit.params)
        if result.selected != record["selected"]:
            raise StakeLearnError(f"epoch {epoch}: the stored updates no longer give the proven selection")
        updated = next_global(result.total, self.circuit.params.weight, self.fixed_point)
        save_array(model_after, updated)
        self.store.record_finalized(epoch, model_after, accuracy_of(updated))

    def result(self, epoch: int) -> EpochResult:
        r = self.store.epoch(epoch)
        return EpochResult(
            epoch,
            [int(v) for v in r["scores"]],
            r["selected"],
            r["flagged"],
            r["slashed"],
            r["gas_used"],
            r["tx_hash"],
            r["accuracy"],
            r["prove_seconds"],
        )
