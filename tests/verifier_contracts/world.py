"""A deployed protocol with a staked client per slot of its round circuit, driving tasks over a proven round."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from eth_utils import keccak

from stakelearn.pipeline.contracts.protocol import deploy_protocol, evaluation_commitment, new_account, round_args
from stakelearn.pipeline.contracts.types import (
    ETHER,
    OptimisticTerms,
    Periods,
    ProtocolConfig,
    TaskParams,
    TaskStatus,
)
from stakelearn.pipeline.federation.rules import PenaltyPolicy
from stakelearn.prover import steps
from stakelearn.prover.round import COMMITMENTS
from stakelearn.prover.rounds import OneProofRound

FEE = 10**17
EPOCHS = 3
INITIAL_MODEL = keccak(text="initial model")
EVALUATION_SALT = keccak(text="salt")
# What the requester reveals: its set's commitments (one proof's x and labels, 64 bytes each); the
# contract tests never prove on them.
EVALUATION_COMMITMENTS = [keccak(text="x") * 2, keccak(text="labels") * 2]
EVALUATION_SET = evaluation_commitment(EVALUATION_SALT, EVALUATION_COMMITMENTS)
REVEALED = b"".join(EVALUATION_COMMITMENTS)  # revealEvaluationSet's setCommitments
EVALUATION_SECONDS = 600
PERIODS = Periods(
    enrollment_seconds=3600,
    commit_seconds=600,
    round_seconds=1800,
    evaluation_seconds=EVALUATION_SECONDS,
    proof_seconds=EVALUATION_SECONDS,
)


@dataclass
class World:
    protocol: object
    prepared: object
    requester: object
    clients: list
    commitments: list  # the session round's commitments: n updates then the aggregate
    proof_json: object
    accuracy: object = None  # the prepared accuracy circuit the deployment's AccuracyVerifier pins

    @property
    def round(self) -> OneProofRound:
        """The deployment's round: one proof by ``prepared``."""
        return OneProofRound(self.prepared)

    task_id: int = 0
    gas: dict = field(default_factory=dict)

    @property
    def chain(self):
        return self.protocol.chain

    def send(self, account, contract, function, *args, value=0):
        receipt = self.chain.send(account, getattr(contract.functions, function)(*args), value=value)
        assert receipt["status"] == 1, f"{function} reverted"
        self.gas[function] = receipt["gasUsed"]
        return receipt

    def params(
        self,
        n=None,
        f=None,
        m=None,
        epochs=EPOCHS,
        fee=FEE,
        evaluation=EVALUATION_SET,
        verifiers=None,
        aggregation=0,
        verification=0,
    ):
        shape = self.prepared.circuit.params  # the deployed RoundVerifier's shape, unless told
        n, f, m = (shape.n if n is None else n), (shape.f if f is None else f), (shape.m if m is None else m)
        accuracy = self.protocol.accuracy_verifier
        round_verifier, accuracy_verifier = verifiers or (
            self.protocol.round_verifier.contract.address,
            accuracy.address,
        )
        return TaskParams(
            keccak(text="model spec"),
            n,
            f,
            m,
            aggregation,
            9_000,
            epochs,
            fee,
            round_verifier,
            INITIAL_MODEL,
            evaluation,
            accuracy.functions.samples().call(),
            accuracy_verifier,
            verification,
        )

    def create_task(self, **kwargs) -> int:
        params = self.params(**kwargs)
        value = self.protocol.config.base_fee_wei + params.escrow
        self.send(self.requester, self.protocol.tasks, "createTask", params.as_abi(), value=value)
        return self.protocol.tasks.functions.taskCount().call()

    def start_task(self, **kwargs) -> int:
        task_id = self.create_task(**kwargs)
        for client in self.clients:
            self.send(client, self.protocol.tasks, "enroll", task_id)
        return task_id

    def signatures(self, task_id, epoch, commitments=None, signers=None):
        commitments = commitments or self.commitments
        signers = signers or self.clients
        return [self.protocol.sign_update(a, task_id, epoch, c) for a, c in zip(signers, commitments)]

    def round_args(self, task_id, epoch, previous=None, commitments=None, signatures=None, proof_json=None):
        previous = previous if previous is not None else (INITIAL_MODEL if epoch == 1 else keccak(self.commitments[-1]))
        commitments = commitments or self.commitments
        signatures = signatures if signatures is not None else self.signatures(task_id, epoch, commitments)
        return round_args(
            task_id, epoch, previous, commitments, signatures, proof_json or self.proof_json, self.prepared.vka
        )

    def equivocation(self, client, task_id, epoch):
        """The arguments of reportEquivocation for ``client`` signing two different commitments
        (the session round's own and another) for one epoch."""
        first, second = self.commitments[0], keccak(text="a second commitment") * 2
        sign = self.protocol.sign_update
        return (
            task_id,
            epoch,
            first,
            sign(client, task_id, epoch, first),
            second,
            sign(client, task_id, epoch, second),
        )

    def let_deadline_pass(self, task_id):
        self.travel_to(self.protocol.tasks.functions.evaluationDeadline(task_id).call() + 1)

    def travel_to(self, timestamp):
        self.chain.w3.testing.timeTravel(timestamp)
        self.chain.w3.testing.mine()  # calls see the latest block's time

    def revert_name(self, account, contract, function, *args, value=0):
        return self.chain.revert_name(account, contract, function, *args, value=value)

    def credits(self):
        return [self.protocol.tasks.functions.creditOf(c.address).call() for c in self.clients]

    def finish(self, task_id):
        """End training (if still running) and settle after the evaluation deadline."""
        if self.protocol.task(task_id).status == TaskStatus.ACTIVE:
            self.send(self.requester, self.protocol.tasks, "endTraining", task_id)
        self.let_deadline_pass(task_id)
        return self.send(self.clients[0], self.protocol.tasks, "settle", task_id)

    def balances_add_up(self) -> bool:
        w3, tasks, registry = self.chain.w3, self.protocol.tasks.functions, self.protocol.registry.functions
        held = (
            tasks.escrowHeld().call()
            + tasks.creditsHeld().call()
            + tasks.baseFeesHeld().call()
            + tasks.burntHeld().call()
        )
        staked = registry.totalStaked().call() + registry.slashedTotal().call()
        return (
            w3.eth.get_balance(self.protocol.tasks.address) == held
            and w3.eth.get_balance(self.protocol.registry.address) == staked
        )


# Flag every client scoring above the reference (ratio 1x, the (n - f)-th smallest score): in the
# session round that is client 4, the far one; the default ratio has its own test.
ABOVE_REFERENCE = PenaltyPolicy(outlier_bps=10_000)


def make_world(chain, prepared, proven_round, accuracy, policy=ABOVE_REFERENCE, optimistic=None) -> World:
    config = ProtocolConfig(
        stake_wei=ETHER,
        unbonding_seconds=3600,
        base_fee_wei=10**16,
        policy=policy,
        periods=PERIODS,
        optimistic=optimistic or OptimisticTerms(),
    )
    protocol = deploy_protocol(chain, OneProofRound(prepared), accuracy, config)
    commitments = json.loads((proven_round / COMMITMENTS).read_text())
    world = World(
        protocol=protocol,
        prepared=prepared,
        requester=new_account(chain, 10 * ETHER),
        clients=[new_account(chain, 3 * ETHER) for _ in range(prepared.circuit.params.n)],
        commitments=[bytes.fromhex(c) for c in [*commitments["updates"], commitments["aggregate"]]],
        proof_json=proven_round / steps.PROOF,
        accuracy=accuracy,
    )
    for client in world.clients:
        world.send(client, protocol.registry, "stake", value=ETHER)
    return world
