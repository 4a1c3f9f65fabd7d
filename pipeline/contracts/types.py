"""The contracts' structs and enums as Python types, field for field, so nobody reads a contract
result by position. ``tests/pipeline/test_contract_types.py`` checks them against the ABIs and
the Solidity source."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from enum import IntEnum

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.federation.rules import PenaltyPolicy

DAY = 24 * 3600
ETHER = 10**18


class Verification(IntEnum):
    """TaskEscrow.TaskParams.verification: how a task's rounds are checked on chain."""

    EAGER = 0  # every round's proofs verified when it is submitted
    OPTIMISTIC = 1  # a round is claimed with a bond and proven only when challenged (OptimisticRounds)


VERIFICATIONS = tuple(v.name.lower() for v in Verification)


class TaskStatus(IntEnum):
    """TaskEscrow.Status."""

    NONE = 0
    OPEN = 1
    ACTIVE = 2
    COMPLETED = 3
    CANCELLED = 4
    EVALUATING = 5


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class _AbiStruct:
    """A frozen dataclass whose fields are a Solidity struct's (or a view's outputs), in order
    and in snake_case."""

    @classmethod
    def from_abi(cls, value):
        """From what web3 returns: a tuple (calls) or a name-keyed mapping (event arguments)."""
        if hasattr(value, "keys"):
            value = [value[camel] for camel in value.keys() if _snake(camel) in {f.name for f in fields(cls)}]
        return cls(*value)

    def as_abi(self) -> tuple:
        return astuple(self)


@dataclass(frozen=True)
class TaskParams(_AbiStruct):
    """TaskEscrow.TaskParams: what a requester asks for when it creates a task."""

    model_spec_hash: bytes
    n: int
    f: int
    m: int
    aggregation: int  # circuits.krum.RULES index: 0 Multi-Krum, 1 NNM then Multi-Krum
    desired_accuracy_bps: int
    max_epochs: int
    fee_per_epoch: int
    verifier: str  # the task's RoundVerifier
    initial_model: bytes  # keccak256 of the initial global model
    evaluation_set: bytes  # the requester's commitment to its evaluation set
    evaluation_size: int  # its number of samples
    accuracy_verifier: str
    verification: int = 0  # Verification: EAGER (every round proven at submit) or OPTIMISTIC

    @property
    def escrow(self) -> int:
        """The fees createTask escrows, beside the protocol's base fee."""
        return self.max_epochs * self.fee_per_epoch


@dataclass(frozen=True)
class TaskState(_AbiStruct):
    """TaskEscrow.task(taskId): where a task stands."""

    requester: str
    status: TaskStatus
    epochs_run: int
    escrow: int
    global_model: bytes
    state_root: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TaskStatus(self.status))


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
            raise StakeLearnError(
                f"a round must be able to land after the commit window: round_seconds "
                f"({self.round_seconds}) must exceed commit_seconds ({self.commit_seconds})"
            )

    def as_abi(self) -> tuple[int, ...]:
        return astuple(self)


@dataclass(frozen=True)
class OptimisticTerms:
    """OptimisticRounds' constructor: the challenge window, each dispute step's deadline and the
    bonds, the same for every optimistic task of a deployment (a requester that could raise the
    challenger's bond could price out the watchers of a false round that frames its clients)."""

    challenge_seconds: int = 6 * 3600  # after a proposal: anyone may challenge
    answer_seconds: int = 2 * 3600  # each side's time for each step of a dispute
    proposer_bond_wei: int = ETHER // 2  # at least; a task's is this or its fee per epoch, the larger
    # What a challenger risks: the gas of the longest answer it can force (a tree dispute over
    # 782 chunks at n = 16, about 7.5 M gas, `stakelearn gas --verification optimistic`) at 30 gwei.
    challenger_bond_wei: int = 3 * ETHER // 10

    def as_abi(self) -> tuple[int, ...]:
        return astuple(self)


@dataclass(frozen=True)
class ProtocolConfig:
    """The constructor arguments of a deployment."""

    stake_wei: int = ETHER
    unbonding_seconds: int = 7 * DAY
    base_fee_wei: int = 10**16
    policy: PenaltyPolicy = PenaltyPolicy()
    periods: Periods = Periods()
    # The share of the fees owed when the target is missed.
    work_bps: int = 5_000
    optimistic: OptimisticTerms = OptimisticTerms()
