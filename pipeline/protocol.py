"""Deploy and drive the protocol contracts (staking, tasks, the MPS rollup, slashing, rewards).

Every actor is a local key (``eth_account``) that signs its own transactions, so the same code
runs on the embedded chain and on any JSON-RPC node. Clients sign their update commitments as
EIP-712 typed data bound to (chainId, the protocol contract, taskId, epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain import Chain, error_name
from stakelearn.pipeline.evm_verify import DeployedRoundVerifier, deploy_accuracy_verifier, deploy_round_verifier
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.evm import verify_arguments, vka_digest
from stakelearn.prover.round import absent_commitment
from stakelearn.verifier_contracts.build import load_artifact


@dataclass(frozen=True)
class SlashingPolicy:
    """Slash ``slash_bps`` of the stake when flagged in ``threshold`` of the last ``window`` epochs."""

    threshold: int = 2
    window: int = 3
    slash_bps: int = 2_000
    # Flag a client Multi-Krum left out only if its score is over 3x the largest selected score
    # (honest clients left out measured <= 2.4x on non-IID digits, attackers caught >= 3.3x).
    outlier_bps: int = 30_000

    def __post_init__(self) -> None:
        if not (1 <= self.threshold <= self.window <= 64 and 0 <= self.slash_bps <= 10_000
                and 10_000 <= self.outlier_bps <= 2**32):
            raise StakeLearnError(f"bad slashing policy {self}: need 1 <= threshold <= window <= 64, "
                                  "bps <= 10000, outlier bps in 10000..2^32")

    def slashes(self, flags: np.ndarray) -> np.ndarray:
        """SlashingManager's rule replayed off chain: given the ``[epochs, n]`` flags, which
        clients are slashed in which epoch (flagged in ``threshold`` of the last ``window``
        epochs; the window then restarts)."""
        flags = np.asarray(flags, dtype=bool)
        slashed = np.zeros_like(flags)
        windows = [0] * flags.shape[1]
        for epoch, row in enumerate(flags):
            for client, flag in enumerate(row):
                windows[client] = ((windows[client] << 1) | int(flag)) & ((1 << self.window) - 1)
                if flag and windows[client].bit_count() >= self.threshold:
                    slashed[epoch, client] = True
                    windows[client] = 0
        return slashed


DAY = 24 * 3600


@dataclass(frozen=True)
class Periods:
    """Every task state's deadline (StakeLearnProtocol.Periods): after each, anyone moves it on."""

    enrollment_seconds: int = 7 * DAY  # an unfilled task: then anyone may cancel it
    commit_seconds: int = DAY  # an epoch's commit window: then a round may leave absent clients out
    round_seconds: int = 2 * DAY  # an epoch with no round: then anyone may end training
    evaluation_seconds: int = 3 * DAY  # the requester's reveal window
    proof_seconds: int = 3 * DAY  # after the reveal: the accuracy proof window

    def __post_init__(self) -> None:
        if self.round_seconds <= self.commit_seconds:
            raise StakeLearnError(f"a round must be able to land after the commit window: round_seconds "
                                  f"({self.round_seconds}) must exceed commit_seconds ({self.commit_seconds})")

    def as_tuple(self) -> tuple[int, ...]:
        return (self.enrollment_seconds, self.commit_seconds, self.round_seconds, self.evaluation_seconds,
                self.proof_seconds)


@dataclass(frozen=True)
class ProtocolConfig:
    stake_wei: int = 10**18
    unbonding_seconds: int = 7 * DAY
    base_fee_wei: int = 10**16
    policy: SlashingPolicy = SlashingPolicy()
    periods: Periods = Periods()
    # The share of the fees owed when the target is missed.
    work_bps: int = 5_000


@dataclass(frozen=True)
class UpdateCommitment:
    """What a client signs (EIP-712, MPSRollup.updateDigest): its commitment for one epoch of one
    task of one protocol contract on one chain, so a signature is worth nothing anywhere else."""

    chain_id: int
    contract: str
    task_id: int
    epoch: int
    commitment: bytes

    def typed_data(self) -> dict:
        return {
            "domain": {"name": "StakeLearn", "version": "1", "chainId": self.chain_id, "verifyingContract": self.contract},
            "types": {"UpdateCommitment": [
                {"name": "taskId", "type": "uint256"}, {"name": "epoch", "type": "uint256"}, {"name": "commitment", "type": "bytes"},
            ]},
            "primaryType": "UpdateCommitment",
            "message": {"taskId": self.task_id, "epoch": self.epoch, "commitment": self.commitment},
        }


def sign_commitment(account, update: UpdateCommitment) -> bytes:
    return bytes(account.sign_message(encode_typed_data(full_message=update.typed_data())).signature)


def recover_commitment_signer(update: UpdateCommitment, signature: bytes) -> str:
    return Account.recover_message(encode_typed_data(full_message=update.typed_data()), signature=signature)


def signed_record(slot: int, account, update: UpdateCommitment) -> dict:
    """The file a client hands the aggregator (``stakelearn commit``): its signed commitment."""
    return {"slot": slot, "signer": account.address, "chain_id": update.chain_id, "contract": update.contract,
            "task_id": update.task_id, "epoch": update.epoch, "commitment": update.commitment.hex(),
            "signature": sign_commitment(account, update).hex()}


def check_signed_records(records: list[dict]) -> None:
    """Every record is for the same (chain, contract, task, epoch) and signed by the key it names.
    Raises InputError on the first that is not."""
    fields = ("chain_id", "contract", "task_id", "epoch")
    for record in records:
        try:
            update = UpdateCommitment(*(record[k] for k in fields), bytes.fromhex(record["commitment"]))
            signer = recover_commitment_signer(update, bytes.fromhex(record["signature"]))
        except (KeyError, ValueError, TypeError) as error:
            raise InputError(f"slot {record.get('slot')}: not a signed commitment record ({error}); "
                             "`stakelearn commit` writes one") from None
        if tuple(record[k] for k in fields) != tuple(records[0][k] for k in fields):
            raise InputError(f"slot {record['slot']}'s commitment is signed for another chain, contract, task or epoch "
                             f"than slot {records[0]['slot']}'s")
        if signer != record["signer"]:
            raise InputError(f"slot {record['slot']}'s commitment is signed by {signer}, not by {record['signer']}")


@dataclass
class Protocol:
    chain: Chain
    registry: object
    tasks: object
    round_verifier: DeployedRoundVerifier
    config: ProtocolConfig
    accuracy_verifier: object = None  # web3 contract bound to AccuracyVerifier

    def sign_update(self, account, task_id: int, epoch: int, commitment: bytes) -> bytes:
        """A client's EIP-712 signature of its update commitment for (task, epoch)."""
        return sign_commitment(account, UpdateCommitment(self.chain.chain_id, self.tasks.address, task_id, epoch,
                                                         commitment))

    def recover_signer(self, task_id: int, epoch: int, commitment: bytes, signature: bytes) -> str:
        return recover_commitment_signer(UpdateCommitment(self.chain.chain_id, self.tasks.address, task_id, epoch,
                                                          commitment), signature)

    def revert_name(self, account, contract, function: str, *args, value: int = 0) -> str | None:
        """The custom error ``contract.function(*args)`` would revert with when ``account``
        sends it, looked up in every contract of the deployment (None if it would succeed)."""
        data = contract.encode_abi(function, args=list(args))
        result = self.chain.call(contract.address, data, sender=account.address, value=value)
        if result.ok:
            return None
        abi = self.tasks.abi + self.registry.abi + self.round_verifier.contract.abi
        if self.accuracy_verifier is not None:
            abi = abi + self.accuracy_verifier.abi
        return error_name(abi, result.revert_data) or result.error

    def round_args(self, task_id: int, epoch: int, previous_model: bytes, commitments: list[bytes],
                   signatures: list[bytes], proof_json: Path, prepared: PreparedCircuit) -> tuple:
        proof, instances, words = verify_arguments(proof_json, prepared.vka)
        return (task_id, epoch, previous_model, b"".join(commitments), b"".join(signatures), proof, instances, words)


def deploy_protocol(chain: Chain, prepared: PreparedCircuit, accuracy: PreparedCircuit,
                    config: ProtocolConfig = ProtocolConfig()) -> Protocol:
    """Deploy the verifiers for the ``prepared`` round circuit and the ``accuracy`` circuit, the
    registry and the protocol, wire them, and approve the verifier pair (the deployer is the
    protocol's governance)."""
    round_verifier = deploy_round_verifier(chain, prepared)
    accuracy_verifier = deploy_accuracy_verifier(chain, accuracy, round_verifier.verifier)
    registry_artifact = load_artifact("StakingRegistry")
    registry_address, _ = chain.deploy(registry_artifact, config.stake_wei, config.unbonding_seconds)
    tasks_artifact = load_artifact("StakeLearnProtocol")
    p = config.policy
    tasks_address, _ = chain.deploy(tasks_artifact, config.base_fee_wei, registry_address, p.threshold, p.window,
                                    p.slash_bps, p.outlier_bps, config.periods.as_tuple(), config.work_bps)
    registry = chain.contract(registry_address, registry_artifact.abi)
    chain.transact_checked(registry_address, registry.encode_abi("setProtocol", args=[tasks_address]))
    tasks = chain.contract(tasks_address, tasks_artifact.abi)
    chain.transact_checked(tasks_address, tasks.encode_abi(
        "approveVerifiers", args=[round_verifier.contract.address, accuracy_verifier.address]))
    return Protocol(chain, registry, tasks, round_verifier, config, accuracy_verifier)


def check_task_verifiers(protocol: Protocol, task_id: int, prepared: PreparedCircuit,
                         accuracy: PreparedCircuit) -> None:
    """What a client checks before it enrolls (and ``audit`` after): the task's verifiers are a
    pair the protocol approved, and their code is exactly the protocol's verifiers deployed for
    the circuits this client commits and proves with (its own VKAs and absent commitment), on
    the protocol's reusable ezkl verifier. A contract cannot lie about its code, as it could
    about a ``vkaDigest()``. Raises StakeLearnError naming what differs."""
    chain = protocol.chain
    params = protocol.tasks.functions.taskParams(task_id).call()
    (n, f, m), samples, round_address, accuracy_address = params[1:4], params[10], params[7], params[11]
    if protocol.tasks.functions.approvedAccuracyVerifier(round_address).call() != accuracy_address:
        raise StakeLearnError(f"task {task_id}: its verifiers {round_address} and {accuracy_address} are not a pair "
                              "the protocol approved; do not enroll")
    reusable = chain.contract(round_address, load_artifact("RoundVerifier").abi).functions.verifier()
    try:
        reusable = reusable.call()
    except Exception as error:  # no such function: not one of our verifiers
        raise StakeLearnError(f"task {task_id}: {round_address} is not a StakeLearn RoundVerifier ({error})") from None
    expected = {
        "round verifier": (round_address, "RoundVerifier",
                           (reusable, vka_digest(prepared.vka), n, f, m, keccak(absent_commitment(prepared)))),
        "accuracy verifier": (accuracy_address, "AccuracyVerifier", (reusable, vka_digest(accuracy.vka), samples)),
        "reusable ezkl verifier": (reusable, "Halo2VerifierReusable", ()),
    }
    reference = Chain.embedded()
    for what, (address, name, args) in expected.items():
        own, _ = reference.deploy(load_artifact(name), *args)
        if chain.w3.eth.get_code(address) != reference.w3.eth.get_code(own):
            raise StakeLearnError(f"task {task_id}: its {what} at {address} is not the protocol's {name} for this "
                                  "client's circuits; do not enroll")


def new_account(chain: Chain, wei: int):
    """A fresh local key funded with ``wei``."""
    account = Account.create()
    chain.fund(account.address, wei)
    return account


def evaluation_commitment(salt: bytes, values: list[int]) -> bytes:
    """A requester's commitment to its evaluation set (RewardManager.evaluationCommitment)."""
    values_hash = keccak(b"".join(v.to_bytes(32, "big") for v in values))
    return keccak(encode(["bytes32", "bytes32"], [salt, values_hash]))


def attach_protocol(chain: Chain, addresses: dict, config: ProtocolConfig) -> Protocol:
    """The deployment at ``addresses`` (as :func:`deployment_addresses` wrote them), after it
    is checked to hold code on ``chain``."""
    for name, address in addresses.items():
        if not chain.w3.eth.get_code(address):
            raise StakeLearnError(f"no contract at {address} ({name}) on {chain.name}; is this the chain the run used?")
    tasks_artifact, registry_artifact, verifier_artifact, accuracy_artifact = (
        load_artifact(name) for name in ("StakeLearnProtocol", "StakingRegistry", "RoundVerifier", "AccuracyVerifier"))
    round_verifier = DeployedRoundVerifier(chain, chain.contract(addresses["round_verifier"], verifier_artifact.abi),
                                           addresses["verifier"])
    return Protocol(chain, chain.contract(addresses["registry"], registry_artifact.abi),
                    chain.contract(addresses["protocol"], tasks_artifact.abi), round_verifier, config,
                    chain.contract(addresses["accuracy_verifier"], accuracy_artifact.abi))


def deployment_addresses(protocol: Protocol) -> dict:
    return {
        "protocol": protocol.tasks.address,
        "registry": protocol.registry.address,
        "round_verifier": protocol.round_verifier.contract.address,
        "verifier": protocol.round_verifier.verifier,
        "accuracy_verifier": protocol.accuracy_verifier.address,
    }
