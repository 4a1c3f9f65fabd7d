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
class ProtocolConfig:
    """The constructor arguments of a deployment."""

    stake_wei: int = ETHER
    unbonding_seconds: int = 7 * DAY
    base_fee_wei: int = 10**16
    policy: PenaltyPolicy = PenaltyPolicy()
    periods: Periods = Periods()
    # The share of the fees owed when the target is missed.
    work_bps: int = 5_000
