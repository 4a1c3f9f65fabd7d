"""A client's steps: stake, enroll, and each epoch export its model, commit to it and sign the
commitment. The same functions serve the demo and the ``stakelearn`` commands a client runs
with its own key on any EVM node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import RULES
from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic
from stakelearn.models.digits import export_onnx
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.models.update_io import load_update
from stakelearn.pipeline.contracts.protocol import Protocol, check_task_verifiers, check_verifiers_approved
from stakelearn.pipeline.contracts.signing import UpdateCommitment
from stakelearn.pipeline.contracts.types import TaskParams
from stakelearn.pipeline.federation.task import TASK_FIXED_POINT, TaskConfig
from stakelearn.pipeline.node.run_folder import task_circuits
from stakelearn.pipeline.node.signer import SlashingProtection
from stakelearn.prover.circuit import PreparedCircuit, prepare
from stakelearn.prover.rounds import Round, round_for


def quantized_model(model: Path, fixed_point: FixedPoint) -> np.ndarray:
    """A client's ONNX model as the round circuit takes it: its parameters, quantized. Client
    and aggregator both derive it this way, so they agree to the bit."""
    return quantize(load_update(model), fixed_point)


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
        round_: Round,
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
        commitment = round_.update_commitment(quantized_model(path, fixed_point), self.index)
        signature = protocol.sign_update(self.account, task_id, epoch, commitment)
        return SignedUpdate(self.index, self.account.address, path, commitment, signature)


def sign_update_commitment(
    account,
    update: np.ndarray,
    slot: int,
    round_: Round,
    chain_id: int,
    contract: str,
    task_id: int,
    epoch: int,
    protection: SlashingProtection,
) -> tuple[UpdateCommitment, bytes]:
    """``stakelearn commit``: the client's commitment for (chain, contract, task, epoch), signed
    once: ``protection`` refuses a second commitment for the same epoch, which the protocol
    slashes as equivocation, and gives the same signature again for the same one."""
    commitment = UpdateCommitment(chain_id, contract, task_id, epoch, round_.update_commitment(update, slot))
    key = (chain_id, contract, account.address, task_id, epoch)
    return commitment, protection.sign_once(key, commitment.commitment, lambda: commitment.sign(account))


def stake(protocol: Protocol, account) -> int:
    """Stake STAKE_AMOUNT in the protocol's registry, or top a slashed stake up to it; return what was sent."""
    required, staked = protocol.stake_amount(), protocol.stake_of(account.address)
    if staked >= required:
        return 0
    protocol.chain.execute(account, protocol.registry, "topUp" if staked else "stake", value=required - staked)
    return required - staked


def withdraw(protocol: Protocol, account, include_stake: bool = False) -> list[str]:
    """Withdraw this key's credit from settled tasks and, with ``include_stake``, its stake: start
    the unbonding, or take the stake once the unbonding period is over. What was done, one line
    each; an InputError saying what is missing when there is nothing to do."""
    done = []
    credit = protocol.credit_of(account.address)
    if credit:
        protocol.execute(account, "withdrawCredit")
        done.append(f"{account.address} withdrew {credit} wei of credit")
    if include_stake:
        registry, chain = protocol.registry, protocol.chain
        staked = protocol.stake_of(account.address)
        since = registry.functions.unbondingSince(account.address).call()
        if not staked:
            raise InputError(f"{account.address} holds no stake")
        if since == 0:
            chain.execute(account, registry, "requestWithdrawal")
            period = registry.functions.UNBONDING_PERIOD().call()
            done.append(f"{account.address} started unbonding {staked} wei; withdraw it again after {period} s")
        else:
            available = since + registry.functions.UNBONDING_PERIOD().call()
            now = chain.latest_timestamp()
            if now < available:
                raise InputError(f"{account.address}'s stake unbonds at {available} (chain time now {now}): wait")
            chain.execute(account, registry, "withdraw")
            done.append(f"{account.address} withdrew its stake of {staked} wei")
    if not done:
        raise InputError(f"{account.address} has no credit to withdraw (and --stake was not given)")
    return done


@dataclass(frozen=True)
class TaskCircuitOptions:
    """The circuit options of a task as ``demo`` posts it (and the Flower example runs it): the
    model, its fixed point, the chunk size of its rounds and the samples per accuracy proof, and
    ezkl's cells per row. With the shape (n, f, m), the rule and the evaluation set's size, which
    the task itself records, they fix the task's circuits (``run_folder.task_circuits``)."""

    hidden: int = 0  # 0: softmax regression; else the MLP's hidden width
    fixed_point: FixedPoint = TASK_FIXED_POINT
    chunk: int = 0  # 0: one proof per round
    accuracy_batch: int = 0  # 0: the whole set in one accuracy proof
    inner_cols: int = 8
    ceremony_srs: Path | None = None


def task_round(params: TaskParams, options: TaskCircuitOptions) -> tuple[Round, PreparedCircuit]:
    """This client's own round and prepared accuracy circuit for the task ``params`` describes,
    as ``check_task_verifiers`` takes them."""
    config = TaskConfig(
        clients=params.n,
        byzantine=params.f,
        attackers=0,
        select=params.m,
        aggregation=RULES[params.aggregation],
        hidden=options.hidden,
        evaluation_samples=params.evaluation_size,
        fixed_point=options.fixed_point,
        chunk=options.chunk,
        accuracy_batch=options.accuracy_batch,
    )
    round_circuit, accuracy_circuit = task_circuits(config, options.inner_cols)
    srs = options.ceremony_srs
    return round_for(round_circuit, config.dimension, srs), prepare(accuracy_circuit, srs)


def enroll(protocol: Protocol, account, task_id: int, options: TaskCircuitOptions | None = None) -> TaskParams:
    """Enroll in a task; return its parameters. The task's verifiers must be a pair the protocol
    approved, and with the task's circuit ``options`` their code must also be exactly the
    protocol's verifiers for this client's own circuits (``contracts.protocol.check_task_verifiers``:
    governance's approval alone does not vouch for the code). Raises StakeLearnError before
    enrolling if not."""
    params = protocol.task_params(task_id)
    if options is None:
        check_verifiers_approved(protocol, task_id, params)
    else:
        check_task_verifiers(protocol, task_id, *task_round(params, options))
    protocol.execute(account, "enroll", task_id)
    return params
