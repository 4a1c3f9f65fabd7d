"""A client's steps: stake, enroll, and each epoch export its model, commit to it and sign the
commitment. The same functions serve the demo and the ``stakelearn`` commands a client runs
with its own key on any EVM node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import tag_update
from stakelearn.files import write_bytes_atomic
from stakelearn.models.digits import export_onnx
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.models.update_io import load_update
from stakelearn.pipeline.contracts.protocol import Protocol, check_verifiers_approved
from stakelearn.pipeline.contracts.signing import UpdateCommitment
from stakelearn.pipeline.contracts.types import TaskParams
from stakelearn.prover.chunked import ChunkCircuit, chained_commitment, update_chunk_commitments
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.commitments import commit


def quantized_model(model: Path, fixed_point: FixedPoint) -> np.ndarray:
    """A client's ONNX model as the round circuit takes it: its parameters, quantized. Client
    and aggregator both derive it this way, so they agree to the bit."""
    return quantize(load_update(model), fixed_point)


def update_commitment(update: np.ndarray, slot: int, prepared: PreparedCircuit) -> bytes:
    """The commitment a client signs for its quantized update in its slot: the KZG commitment
    the round proof will carry, or for a task proven in chunks (``prepared`` is its chunk
    circuit) the chain of its chunk commitments."""
    if isinstance(prepared.circuit, ChunkCircuit):
        return chained_commitment(update_chunk_commitments(update, slot, prepared))
    return commit(tag_update(update, slot), prepared.vk, prepared.settings, prepared.srs.path)


@dataclass(frozen=True)
class SignedUpdate:
    client: int
    address: str
    model: Path
    commitment: bytes
    signature: bytes


@dataclass(frozen=True)
class Client:
    index: int  # the enrollment slot
    account: object  # eth_account LocalAccount

    def submit(
        self,
        protocol: Protocol,
        prepared: PreparedCircuit,
        task_id: int,
        epoch: int,
        trained: np.ndarray,
        hidden: int,
        fixed_point: FixedPoint,
        folder: Path,
    ) -> SignedUpdate:
        """Export the trained model, commit to it quantized and sign the commitment."""
        path = folder / f"client-{self.index}.onnx"
        staging = folder / f".client-{self.index}.staging.onnx"
        export_onnx(trained, hidden, staging)
        write_bytes_atomic(path, staging.read_bytes())
        staging.unlink()
        commitment = update_commitment(quantized_model(path, fixed_point), self.index, prepared)
        signature = protocol.sign_update(self.account, task_id, epoch, commitment)
        return SignedUpdate(self.index, self.account.address, path, commitment, signature)


def sign_update_commitment(
    account,
    update: np.ndarray,
    slot: int,
    prepared: PreparedCircuit,
    chain_id: int,
    contract: str,
    task_id: int,
    epoch: int,
) -> tuple[UpdateCommitment, bytes]:
    """``stakelearn commit``: the client's commitment for (chain, contract, task, epoch), signed."""
    commitment = UpdateCommitment(chain_id, contract, task_id, epoch, update_commitment(update, slot, prepared))
    return commitment, commitment.sign(account)


def stake(protocol: Protocol, account) -> int:
    """Stake STAKE_AMOUNT in the protocol's registry, or top a slashed stake up to it; return what was sent."""
    required, staked = protocol.stake_amount(), protocol.stake_of(account.address)
    if staked >= required:
        return 0
    protocol.chain.execute(account, protocol.registry, "topUp" if staked else "stake", value=required - staked)
    return required - staked


def enroll(protocol: Protocol, account, task_id: int) -> TaskParams:
    """Enroll in a task whose verifiers are a pair the protocol approved; return its parameters.
    (A client that holds the task's circuits also checks the verifiers' code:
    ``contracts.protocol.check_task_verifiers``.)"""
    params = protocol.task_params(task_id)
    check_verifiers_approved(protocol, task_id, params)
    protocol.execute(account, "enroll", task_id)
    return params
