"""The aggregator's steps: collect and check the clients' signed updates, prove the round,
submit it, and keep the next global model.

The aggregator's epoch is a sequence of stages recorded in its :class:`SequencerStore`, each of
which can be re-entered after a crash: nothing done is redone, nothing is submitted twice. The
round folder it proves holds the clients' signed commitments (``signed.json``), so a folder is
submitted the same way by the demo and by ``stakelearn submit``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eth_utils import to_hex

from stakelearn.circuits.krum import KrumParams, krum_round
from stakelearn.errors import InputError, ProofError, StakeLearnError
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION, chunk_calls, round_session, stage_chunks
from stakelearn.pipeline.contracts.optimistic import Bundle
from stakelearn.pipeline.contracts.protocol import Protocol, round_args
from stakelearn.pipeline.contracts.signing import ABSENT_SIGNATURE, signed_record
from stakelearn.pipeline.contracts.types import Verification
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.node.client import SignedUpdate, quantized_model
from stakelearn.pipeline.node.proposer import claim_round
from stakelearn.pipeline.node.run_folder import save_array
from stakelearn.pipeline.node.store import SequencerStore, StoredUpdate
from stakelearn.prover.round import SIGNED
from stakelearn.prover.rounds import Round, open_round
from stakelearn.verifier_contracts.build import load_artifact

log = logging.getLogger(__name__)


def stored_models(store: SequencerStore, epoch: int, fixed_point: FixedPoint) -> np.ndarray:
    """The ``[n, d]`` quantized models a store holds for ``epoch``, in client order."""
    return np.stack([quantized_model(store.resolve(u.path), fixed_point) for u in store.updates(epoch)])


def folder_round_args(folder: Path, round_: Round, task_id: int, epoch: int, previous_model: bytes) -> tuple:
    """submitRound's Round from a verified round folder with its clients' signed commitments
    (an absent slot gets the all-zero signature)."""
    signatures = folder_signatures(folder, round_, task_id, epoch)
    proof, vka = round_.submitted_proof(folder)
    return round_args(task_id, epoch, previous_model, round_.commitments(folder), signatures, proof, vka)


def folder_signatures(folder: Path, round_: Round, task_id: int, epoch: int) -> list[bytes]:
    """The n signatures a round folder's signed records hold for (task, epoch), slot by slot; an
    absent slot's is all zeros."""
    if not (folder / SIGNED).exists():
        raise InputError(f"{folder} has no {SIGNED}: prove with the clients' --signed commitments to submit it")
    signed = {record["slot"]: record for record in json.loads((folder / SIGNED).read_text())}
    for record in signed.values():
        if (record["task_id"], record["epoch"]) != (task_id, epoch):
            raise InputError(
                f"slot {record['slot']} signed for task {record['task_id']} epoch {record['epoch']}, "
                f"not task {task_id} epoch {epoch}"
            )
    return [bytes.fromhex(signed[i]["signature"]) if i in signed else ABSENT_SIGNATURE for i in range(round_.params.n)]


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
    verified when proven)."""
    round_ = open_round(folder)
    round_.verify(folder)
    receipt, _ = send_round(protocol, account, task_id, epoch, folder, round_, chunks_per_transaction)
    return receipt


def send_round(
    protocol: Protocol,
    account,
    task_id: int,
    epoch: int,
    folder: Path,
    round_: Round,
    chunks_per_transaction: int = CHUNKS_PER_TRANSACTION,
) -> tuple[dict, int]:
    """Send a verified round folder: the proofs its kind stages first (a chunked round's chunk
    proofs, at most ``chunks_per_transaction`` per transaction, resuming after those the chain
    already holds), then ``submitRound`` over the chain's current global model. The receipt,
    and the gas of the staging transactions. An optimistic task's round is claimed instead
    (:func:`claim_round`): the receipt is the one that records it, the gas the others'."""
    if protocol.task_params(task_id).verification == Verification.OPTIMISTIC:
        signatures = folder_signatures(folder, round_, task_id, epoch)
        return claim_round(protocol, account, task_id, epoch, Bundle(round_, folder), signatures)
    staging = stage_round(protocol, account, task_id, epoch, folder, round_, chunks_per_transaction)
    previous = protocol.task(task_id).global_model
    args = folder_round_args(folder, round_, task_id, epoch, previous)
    return protocol.execute(account, "submitRound", args), sum(staging)


def stage_round(
    protocol: Protocol, account, task_id: int, epoch: int, folder: Path, round_: Round, per_transaction: int
) -> list[int]:
    """Stage a round folder's staged proofs with the task's verifier; the gas of each transaction
    (none for a round of one proof). A line of progress per transaction."""
    staged, vka = round_.staged_proofs(folder)
    if not staged:
        return []
    verifier = protocol.chain.contract(
        protocol.task_params(task_id).verifier, load_artifact(round_.verifier_contract).abi
    )

    def progress(done: int, total: int, gas: int) -> None:
        log.info(f"staging chunk proofs: {done}/{total} on chain ({gas:,} gas)")

    session = round_session(task_id, epoch)
    return stage_chunks(
        protocol.chain, account, verifier, session, chunk_calls(staged, vka), vka, per_transaction, progress
    )


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
        round_: Round,
        store: SequencerStore,
        task_id: int,
        clients: list[str],
        fixed_point: FixedPoint,
    ) -> None:
        self.account = account
        self.protocol = protocol
        self.round = round_
        self.store = store
        self.task_id = task_id
        self.clients = clients  # enrolled addresses, in enrollment order
        self.fixed_point = fixed_point

    @property
    def params(self) -> KrumParams:
        return self.round.params

    # --- collected ------------------------------------------------------------------------
    def collect(self, epoch: int, model_before: Path, submissions: list[SignedUpdate]) -> None:
        """Check every client's update against its signed commitment, then store the batch."""
        if sorted(s.client for s in submissions) != list(range(self.params.n)):
            raise StakeLearnError(f"epoch {epoch}: expected one update from each of the {self.params.n} clients")
        stored = []
        for s in sorted(submissions, key=lambda s: s.client):
            if self.round.update_commitment(quantized_model(s.model, self.fixed_point), s.client) != s.commitment:
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
        if round_dir.exists():  # proven before a crash, not yet recorded: check it, keep it
            outcome = self.round.verify(round_dir)
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
            outcome = self.round.prove(
                self.quantized_updates(epoch), round_dir, signed=signed, sources=sources, stats=stats
            )
        if outcome.update_commitments != [u.commitment for u in updates]:
            raise ProofError(f"epoch {epoch}: the proof's commitments differ from the clients' signed commitments")
        prove_seconds = self.round.proving_seconds(stats)
        self.store.record_proven(epoch, round_dir, prove_seconds, outcome.scores, outcome.selected)

    # --- submitted ------------------------------------------------------------------------
    def submit(self, epoch: int) -> None:
        """Submit the proven round unless the chain already has it (sent before a crash)."""
        landed = self._round_event(epoch)
        staging_gas = 0  # the staging transactions this call sent (none if the round landed before)
        if landed is None:
            state = self.protocol.task(self.task_id)
            if state.epochs_run != epoch - 1:
                raise StakeLearnError(
                    f"the chain is at epoch {state.epochs_run} of task {self.task_id}, "
                    f"the store at epoch {epoch}; they belong to different runs"
                )
            round_dir = self.store.resolve(self.store.epoch(epoch)["round_dir"])
            _, staging_gas = send_round(self.protocol, self.account, self.task_id, epoch, round_dir, self.round)
            landed = self._round_event(epoch)
        event, receipt = landed
        slashed = self.protocol.events_in(receipt, "ClientSlashed")
        flagged_mask = event["args"]["flaggedMask"]
        self.store.record_submitted(
            epoch,
            to_hex(receipt["transactionHash"]),
            receipt["gasUsed"] + staging_gas,
            [i for i in range(self.params.n) if flagged_mask >> i & 1],
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
        result = krum_round(self.quantized_updates(epoch), self.params)
        if result.selected != record["selected"]:
            raise StakeLearnError(f"epoch {epoch}: the stored updates no longer give the proven selection")
        updated = next_global(result.total, self.params.weight, self.fixed_point)
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
