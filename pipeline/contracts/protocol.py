"""The protocol contracts (staking, tasks, the MPS rollup, slashing, rewards): deploy, attach,
and read them through typed views.

Every actor is a local key (``eth_account``) that signs its own transactions, so the same code
runs on the embedded chain and on any JSON-RPC node. Event logs are read from the protocol's
deployment block (``DEPLOYMENT_BLOCK``) in bounded slices, as public nodes require.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.signing import UpdateCommitment
from stakelearn.pipeline.contracts.types import ProtocolConfig, TaskParams, TaskState
from stakelearn.pipeline.contracts.verifiers import (
    DeployedRoundVerifier,
    accuracy_verifier_args,
    deploy_accuracy_verifier,
)
from stakelearn.prover.accuracy import evaluation_set_hash
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.evm import verify_arguments
from stakelearn.prover.rounds import Round
from stakelearn.verifier_contracts.build import load_artifact


@dataclass
class Protocol:
    """A deployment: the protocol contract (``tasks``), its registry and, when this process
    deployed them or a run folder names them, the verifier pair it approved."""

    chain: Chain
    registry: object  # web3 contract bound to StakingRegistry
    tasks: object  # web3 contract bound to StakeLearnProtocol
    deployment_block: int
    config: ProtocolConfig | None = None
    round_verifier: DeployedRoundVerifier | None = None
    accuracy_verifier: object = None  # web3 contract bound to AccuracyVerifier

    @property
    def rounds(self):
        """The deployment's OptimisticRounds (web3 contract), where optimistic tasks' rounds go."""
        address = self.tasks.functions.optimisticRounds().call()
        return self.chain.contract(address, load_artifact("OptimisticRounds").abi)

    def update_commitment(self, task_id: int, epoch: int, commitment: bytes) -> UpdateCommitment:
        return UpdateCommitment(self.chain.chain_id, self.tasks.address, task_id, epoch, commitment)

    def sign_update(self, account, task_id: int, epoch: int, commitment: bytes) -> bytes:
        """A client's EIP-712 signature of its update commitment for (task, epoch)."""
        return self.update_commitment(task_id, epoch, commitment).sign(account)

    def recover_signer(self, task_id: int, epoch: int, commitment: bytes, signature: bytes) -> str:
        return self.update_commitment(task_id, epoch, commitment).signer(signature)

    def task(self, task_id: int) -> TaskState:
        return TaskState.from_abi(self.tasks.functions.task(task_id).call())

    def task_params(self, task_id: int) -> TaskParams:
        return TaskParams.from_abi(self.tasks.functions.taskParams(task_id).call())

    def task_count(self) -> int:
        return self.tasks.functions.taskCount().call()

    def logs(self, event: str, from_block: int | None = None, **filters) -> list:
        """The protocol's ``event`` logs matching ``filters`` (e.g. ``taskId=1``), oldest first,
        from ``from_block`` (default: the deployment's)."""
        start = self.deployment_block if from_block is None else from_block
        return self.chain.logs(getattr(self.tasks.events, event), start, **filters)

    def events_in(self, receipt: dict, event: str) -> list:
        """The protocol's ``event`` logs a transaction emitted."""
        return getattr(self.tasks.events, event)().process_receipt(receipt, errors=DISCARD)

    def base_fee(self) -> int:
        return self.tasks.functions.BASE_FEE().call()

    def credit_of(self, address: str) -> int:
        return self.tasks.functions.creditOf(address).call()

    def stake_amount(self) -> int:
        return self.registry.functions.STAKE_AMOUNT().call()

    def stake_of(self, address: str) -> int:
        return self.registry.functions.stakeOf(address).call()

    def execute(self, account, function: str, *args, value: int = 0) -> dict:
        """Send a protocol function from ``account``; a revert raises naming its custom error."""
        return self.chain.execute(account, self.tasks, function, *args, value=value)


def round_args(
    task_id: int,
    epoch: int,
    previous_model: bytes,
    commitments: list[bytes],
    signatures: list[bytes],
    proof_json: Path,
    vka: Path,
) -> tuple:
    """submitRound's Round: the batch (n updates' commitments then the aggregate's, the n
    signatures) and the proof with its instances and VKA."""
    proof, instances, words = verify_arguments(proof_json, vka)
    return (task_id, epoch, previous_model, b"".join(commitments), b"".join(signatures), proof, instances, words)


def deploy_protocol(
    chain: Chain,
    round_: Round,
    accuracy: PreparedCircuit,
    config: ProtocolConfig | None = None,
    evaluation_samples: int | None = None,
) -> Protocol:
    """Deploy the protocol (:func:`deploy_core`) and approve the verifier pair for the task's
    ``round_`` and ``accuracy`` circuit (:func:`approve_verifier_pair`), both from the payer,
    the protocol's governance: the demo's one-operator deployment."""
    protocol = deploy_core(chain, config)
    verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    return approve_verifier_pair(protocol, verifier, round_, accuracy, evaluation_samples)


def deploy_core(chain: Chain, config: ProtocolConfig | None = None) -> Protocol:
    """Deploy the registry, the protocol and its OptimisticRounds, once per chain, from the payer,
    which becomes the protocol's governance (it alone approves verifier pairs), and wire them."""
    config = config or ProtocolConfig()
    registry_artifact = load_artifact("StakingRegistry")
    registry_address, _ = chain.deploy(registry_artifact, config.stake_wei, config.unbonding_seconds)
    tasks_artifact = load_artifact("StakeLearnProtocol")
    p = config.policy
    tasks_address, _ = chain.deploy(
        tasks_artifact,
        (  # IStakeLearnProtocol.ProtocolConfig
            config.base_fee_wei,
            registry_address,
            p.slash_bps,
            p.outlier_bps,
            config.periods.as_abi(),
            config.work_bps,
        ),
    )
    registry = chain.contract(registry_address, registry_artifact.abi)
    tasks = chain.contract(tasks_address, tasks_artifact.abi)
    chain.execute(chain.require_payer(), registry, "setProtocol", tasks_address)
    rounds_address, _ = chain.deploy(load_artifact("OptimisticRounds"), tasks_address, *config.optimistic.as_abi())
    chain.execute(chain.require_payer(), tasks, "setOptimisticRounds", rounds_address)
    return Protocol(chain, registry, tasks, tasks.functions.DEPLOYMENT_BLOCK().call(), config)


def approve_verifier_pair(
    protocol: Protocol, verifier: str, round_: Round, accuracy: PreparedCircuit, evaluation_samples: int | None = None
) -> Protocol:
    """Governance's step for a task shape: deploy the verifiers for ``round_`` and the
    ``accuracy`` circuit (evaluation sets of ``evaluation_samples``, default one proof's) on the
    reusable ezkl ``verifier``, their VKAs registered there, and approve them as a pair. The
    chain's payer must be the protocol's governance."""
    chain = protocol.chain
    round_verifier = deploy_round_verifier(chain, round_, verifier)
    accuracy_verifier = deploy_accuracy_verifier(chain, accuracy, verifier, evaluation_samples)
    pair = (round_verifier.contract.address, accuracy_verifier.address)
    chain.execute(chain.require_payer(), protocol.tasks, "approveVerifiers", *pair)
    return replace(protocol, round_verifier=round_verifier, accuracy_verifier=accuracy_verifier)


def attach_protocol(chain: Chain, addresses: dict, config: ProtocolConfig | None = None) -> Protocol:
    """The deployment at ``addresses`` (``protocol``, and ``round_verifier``, ``verifier`` and
    ``accuracy_verifier`` when known, as :func:`deployment_addresses` writes them), after each
    is checked to hold code on ``chain``; the registry is the one the protocol names."""
    try:
        addresses = {name: to_checksum_address(address) for name, address in addresses.items()}
    except ValueError as error:
        raise InputError(f"bad contract address: {error}") from None
    for name, address in addresses.items():
        if not chain.has_code(address):
            raise InputError(f"no contract at {address} ({name}) on {chain.name}; is this the protocol's chain?")
    tasks = chain.contract(addresses["protocol"], load_artifact("StakeLearnProtocol").abi)
    registry = chain.contract(tasks.functions.REGISTRY().call(), load_artifact("StakingRegistry").abi)
    round_verifier = accuracy_verifier = None
    if "round_verifier" in addresses:
        round_verifier = DeployedRoundVerifier(
            chain,
            chain.contract(addresses["round_verifier"], load_artifact("RoundVerifier").abi),
            addresses["verifier"],
        )
        accuracy_verifier = chain.contract(addresses["accuracy_verifier"], load_artifact("AccuracyVerifier").abi)
    return Protocol(
        chain, registry, tasks, tasks.functions.DEPLOYMENT_BLOCK().call(), config, round_verifier, accuracy_verifier
    )


def deployment_addresses(protocol: Protocol) -> dict:
    return {
        "protocol": protocol.tasks.address,
        "registry": protocol.registry.address,
        "round_verifier": protocol.round_verifier.contract.address,
        "verifier": protocol.round_verifier.verifier,
        "accuracy_verifier": protocol.accuracy_verifier.address,
    }


def check_task_verifiers(protocol: Protocol, task_id: int, round_: Round, accuracy: PreparedCircuit) -> None:
    """What a client checks before it enrolls (and ``audit`` after): the task's verifiers are a
    pair the protocol approved, and their code is exactly the protocol's verifiers deployed for
    the circuits this client commits and proves with (its own VKAs and absent commitment), on
    the protocol's reusable ezkl verifier. A contract cannot lie about its code, as it could
    about a ``vkaDigest()``. ``round_`` is the task's round over this client's circuits.
    Raises StakeLearnError naming what differs."""
    params = protocol.task_params(task_id)
    check_verifiers_approved(protocol, task_id, params)
    wrong = pair_differences(
        protocol.chain, params.verifier, params.accuracy_verifier, round_, accuracy, params.evaluation_size
    )
    if wrong:
        address, what, name = wrong[0]
        raise StakeLearnError(
            f"task {task_id}: its {what} at {address} is not the protocol's {name} for this client's circuits; "
            "do not enroll"
        )


def pair_differences(
    chain: Chain, round_address: str, accuracy_address: str, round_: Round, accuracy: PreparedCircuit, samples: int
) -> list[tuple[str, str, str]]:
    """Which of a verifier pair's contracts (address, what, contract) are not the protocol's verifiers for
    ``round_`` and the ``accuracy`` circuit on evaluation sets of ``samples``: each one's code is
    compared with the same contract deployed here on the embedded chain."""
    round_verifier = chain.contract(round_address, load_artifact("RoundVerifier").abi)
    answer = chain.call(round_address, round_verifier.encode_abi("verifier", args=[]))
    if not answer.ok or len(answer.data) != 32:
        return [(round_address, "round verifier", "RoundVerifier")]
    reusable = to_checksum_address(answer.data[12:])
    expected = {
        "round verifier": (round_address, round_.verifier_contract, (reusable, *round_.verifier_args())),
        "accuracy verifier": (
            accuracy_address,
            "AccuracyVerifier",
            accuracy_verifier_args(reusable, accuracy, samples),
        ),
        "reusable ezkl verifier": (reusable, "Halo2VerifierReusable", ()),
    }
    reference, wrong = Chain.embedded(), []
    for what, (address, name, args) in expected.items():
        own, _ = reference.deploy(load_artifact(name), *args)
        if chain.code(address) != reference.code(own):
            wrong.append((address, what, name))
    return wrong


def approved_pair_for(
    protocol: Protocol, round_: Round, accuracy: PreparedCircuit, samples: int
) -> tuple[str, str] | None:
    """The newest verifier pair governance approved whose code is the protocol's verifiers for
    these circuits (what ``task create`` posts a task with), or None."""
    approved = protocol.logs("VerifiersApproved")
    for event in reversed(approved):
        pair = (event["args"]["roundVerifier"], event["args"]["accuracyVerifier"])
        current = protocol.tasks.functions.approvedAccuracyVerifier(pair[0]).call()
        if current == pair[1] and not pair_differences(protocol.chain, *pair, round_, accuracy, samples):
            return pair
    return None


def check_verifiers_approved(protocol: Protocol, task_id: int, params: TaskParams | None = None) -> None:
    """The task's verifiers are a pair the protocol's governance approved (what a client without
    the task's circuits can check); raises StakeLearnError if not."""
    params = params or protocol.task_params(task_id)
    if protocol.tasks.functions.approvedAccuracyVerifier(params.verifier).call() != params.accuracy_verifier:
        raise StakeLearnError(
            f"task {task_id}: its verifiers {params.verifier} and {params.accuracy_verifier} are not "
            "a pair the protocol approved; do not enroll"
        )


def new_account(chain: Chain, wei: int):
    """A fresh local key funded with ``wei``."""
    account = Account.create()
    chain.fund(account.address, wei)
    return account


def evaluation_commitment(salt: bytes, set_commitments: list[bytes]) -> bytes:
    """A requester's commitment to its evaluation set (RewardManager.evaluationCommitment): the
    salted hash of the set's commitments under the accuracy circuit, in proof order
    (prover.accuracy.evaluation_set_commitments)."""
    return keccak(encode(["bytes32", "bytes32"], [salt, evaluation_set_hash(set_commitments)]))
