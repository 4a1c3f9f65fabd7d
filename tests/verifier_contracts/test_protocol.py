"""The protocol contracts on the embedded EVM: each public function's success and reverts
(by custom error), and the threats of the issue, each a test."""

import json

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3.logs import DISCARD

from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.signing import UpdateCommitment
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.pipeline.federation.rules import PenaltyPolicy
from stakelearn.prover import steps
from stakelearn.prover.circuit import prepare
from stakelearn.prover.round import round_commitments
from stakelearn.verifier_contracts.solc import compile_sources

from .world import (
    EPOCHS,
    ETHER,
    EVALUATION_COMMITMENTS,
    EVALUATION_SALT,
    EVALUATION_SECONDS,
    FEE,
    INITIAL_MODEL,
    REVEALED,
    make_world,
)

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
FLAGGED = 0b10000  # the session round keeps clients 0, 2, 3 (m = 3); client 4 alone scores above the reference
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def reverts(world, account, contract, function, *args, value=0):
    return world.chain.revert_name(account, contract, function, *args, value=value)


# --- StakingRegistry -------------------------------------------------------------------------


def test_stake_success(world):
    assert world.protocol.registry.functions.stakeOf(world.clients[0].address).call() == ETHER
    assert world.balances_add_up()


def test_stake_wrong_amount(world):
    newcomer = new_account(world.chain, 3 * ETHER)
    assert (
        reverts(world, newcomer, world.protocol.registry, "stake", value=ETHER // 2) == "StakingRegistry__WrongAmount"
    )


def test_stake_already_staked(world):
    assert (
        reverts(world, world.clients[0], world.protocol.registry, "stake", value=ETHER)
        == "StakingRegistry__AlreadyStaked"
    )


def test_withdraw_after_unbonding_success(world):
    client, registry = world.clients[0], world.protocol.registry
    world.send(client, registry, "requestWithdrawal")
    assert reverts(world, client, registry, "withdraw") == "StakingRegistry__UnbondingNotOver"
    world.chain.w3.testing.timeTravel(world.chain.w3.eth.get_block("latest")["timestamp"] + 3601)
    before = world.chain.w3.eth.get_balance(client.address)
    receipt = world.send(client, registry, "withdraw")
    paid = world.chain.w3.eth.get_balance(client.address) - before + receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert paid == ETHER and world.balances_add_up()


def test_withdraw_not_unbonding(world):
    assert reverts(world, world.clients[0], world.protocol.registry, "withdraw") == "StakingRegistry__NotUnbonding"


def test_lock_unlock_slash_only_protocol(world):
    registry, client = world.protocol.registry, world.clients[0]
    for function, args in (("lock", [client.address]), ("unlock", [client.address]), ("slash", [client.address, 1])):
        assert reverts(world, client, registry, function, *args) == "StakingRegistry__Unauthorized"
    assert reverts(world, world.requester, registry, "setProtocol", client.address) == "StakingRegistry__Unauthorized"


def test_requestWithdrawal_twice(world):
    world.send(world.clients[0], world.protocol.registry, "requestWithdrawal")
    assert (
        reverts(world, world.clients[0], world.protocol.registry, "requestWithdrawal") == "StakingRegistry__Unbonding"
    )


def test_requestWithdrawal_not_staked(world):
    assert reverts(world, world.requester, world.protocol.registry, "requestWithdrawal") == "StakingRegistry__NotStaked"


def test_setProtocol_only_once(world):
    deployer = world.chain.payer
    assert (
        reverts(world, deployer, world.protocol.registry, "setProtocol", deployer)
        == "StakingRegistry__ProtocolAlreadySet"
    )


def test_withdraw_reentrant_receiver_is_stopped_by_the_guard(world):
    registry = world.protocol.registry
    address, reenterer = deploy_reenterer(world, registry.address)
    stake = registry.encode_abi("stake")
    world.send(world.requester, reenterer, "call", stake, b"", value=ETHER)
    world.send(world.requester, reenterer, "call", registry.encode_abi("requestWithdrawal"), b"")
    world.chain.w3.testing.timeTravel(world.chain.w3.eth.get_block("latest")["timestamp"] + 3601)
    withdraw = registry.encode_abi("withdraw")
    world.send(world.requester, reenterer, "call", withdraw, withdraw)  # receive() calls withdraw again
    assert reenterer.functions.reason().call() == REENTRANT_CALL
    assert world.chain.w3.eth.get_balance(address) == ETHER  # paid once
    assert registry.functions.stakeOf(address).call() == 0 and world.balances_add_up()


# --- TaskEscrow ------------------------------------------------------------------------------


def test_DEPLOYMENT_BLOCK_is_the_block_that_created_the_protocol(world):
    tasks, w3 = world.protocol.tasks, world.chain.w3
    block = tasks.functions.DEPLOYMENT_BLOCK().call()
    assert w3.eth.get_code(tasks.address, block) and not w3.eth.get_code(tasks.address, block - 1)
    task_id = world.create_task()
    (created,) = tasks.events.TaskCreated().get_logs(from_block=block, to_block=w3.eth.block_number)
    assert created["args"]["taskId"] == task_id


def test_createTask_success_holds_escrow_and_base_fee(world):
    task_id = world.create_task()
    requester, status, epochs_run, escrow, model, _ = world.protocol.tasks.functions.task(task_id).call()
    assert (requester, status, epochs_run, escrow, model) == (
        world.requester.address,
        1,
        0,
        EPOCHS * FEE,
        INITIAL_MODEL,
    )
    assert world.balances_add_up()


def test_createTask_wrong_payment(world):
    tasks = world.protocol.tasks
    assert (
        reverts(world, world.requester, tasks, "createTask", world.params().as_abi(), value=EPOCHS * FEE)
        == "TaskEscrow__WrongPayment"
    )


@pytest.mark.parametrize("shape", [dict(n=5, f=2, m=1), dict(n=5, f=1, m=0), dict(n=5, f=1, m=5), dict(epochs=0)])
def test_createTask_bad_params(world, shape):
    params = world.params(**shape)
    value = 10**16 + params.escrow
    assert (
        reverts(world, world.requester, world.protocol.tasks, "createTask", params.as_abi(), value=value)
        == "TaskEscrow__BadParams"
    )


def test_createTask_verifier_shape(world):
    params = world.params(n=7, f=2, m=3)
    value = 10**16 + params.escrow
    assert (
        reverts(world, world.requester, world.protocol.tasks, "createTask", params.as_abi(), value=value)
        == "TaskEscrow__VerifierShape"
    )


def test_enroll_success_starts_task_at_n(world):
    task_id = world.start_task()
    assert world.protocol.task(task_id).status == TaskStatus.ACTIVE
    assert world.protocol.registry.functions.locksOf(world.clients[0].address).call() == 1


def test_enroll_not_staked(world):
    task_id = world.create_task()
    stranger = new_account(world.chain, ETHER)
    assert reverts(world, stranger, world.protocol.tasks, "enroll", task_id) == "StakingRegistry__NotStaked"


def test_enroll_twice(world):
    task_id = world.create_task()
    world.send(world.clients[0], world.protocol.tasks, "enroll", task_id)
    assert reverts(world, world.clients[0], world.protocol.tasks, "enroll", task_id) == "TaskEscrow__AlreadyEnrolled"


def test_enroll_while_unbonding(world):
    task_id = world.create_task()
    world.send(world.clients[0], world.protocol.registry, "requestWithdrawal")
    assert reverts(world, world.clients[0], world.protocol.tasks, "enroll", task_id) == "StakingRegistry__Unbonding"


def test_enroll_after_start(world):
    task_id = world.start_task()
    world.send(new_client := new_account(world.chain, 2 * ETHER), world.protocol.registry, "stake", value=ETHER)
    assert reverts(world, new_client, world.protocol.tasks, "enroll", task_id) == "TaskEscrow__WrongStatus"


def test_cancel_success_refunds_escrow_keeps_base_fee(world):
    task_id = world.create_task()
    world.send(world.clients[0], world.protocol.tasks, "enroll", task_id)
    world.send(world.requester, world.protocol.tasks, "cancel", task_id)
    tasks = world.protocol.tasks.functions
    assert tasks.creditOf(world.requester.address).call() == EPOCHS * FEE
    assert tasks.baseFeesHeld().call() == 10**16
    assert world.protocol.registry.functions.locksOf(world.clients[0].address).call() == 0
    assert world.balances_add_up()


def test_cancel_by_stranger_during_enrollment(world):
    task_id = world.create_task()
    assert reverts(world, world.clients[0], world.protocol.tasks, "cancel", task_id) == "TaskEscrow__EnrollmentOpen"


def test_cancel_after_start(world):
    task_id = world.start_task()
    assert reverts(world, world.requester, world.protocol.tasks, "cancel", task_id) == "TaskEscrow__WrongStatus"


# --- MPS rollup and SlashingManager ----------------------------------------------------------


def test_submitRound_success_records_batch_and_flags(world):
    task_id = world.start_task()
    receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["flaggedMask"] == FLAGGED
    assert event["args"]["commitments"] == b"".join(world.commitments)
    _, _, epochs_run, _, model, root = world.protocol.tasks.functions.task(task_id).call()
    assert (epochs_run, model, root) == (1, keccak(world.commitments[-1]), event["args"]["stateRoot"])
    flagged = world.protocol.tasks.events.ClientFlagged().process_receipt(receipt, errors=DISCARD)
    assert [e["args"]["client"] for e in flagged] == [world.clients[4].address]


def test_submitRound_flags_only_outliers_under_the_default_policy(small_circuit, proven_round, small_accuracy):
    world = make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy, PenaltyPolicy())
    task_id = world.start_task()
    receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    scores = [int(i) for i in world.round_args(task_id, 1)[6][:5]]
    reference, ratio = sorted(scores)[3], PenaltyPolicy().outlier_bps  # the (n - f)-th smallest, f = 1
    # client 4 is far from the reference score, everyone else within the policy's ratio of it
    assert max(scores[:4]) * 10_000 <= ratio * reference < scores[4] * 10_000
    assert event["args"]["flaggedMask"] == 0b10000


def test_submitRound_rejects_tampered_proof(world, tmp_path):
    task_id = world.start_task()
    proof = json.loads(world.proof_json.read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1
    (bad := tmp_path / "proof.json").write_text(json.dumps(proof))
    args = world.round_args(task_id, 1, proof_json=bad)
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "RoundVerifier__ProofRejected"


def test_submitRound_rejects_proof_over_swapped_update(world):
    task_id = world.start_task()
    signed = list(world.commitments)
    signed[4] = keccak(text="what client 4 really signed") * 2  # the proof is over another update
    args = world.round_args(task_id, 1, commitments=signed)
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args)
        == "RoundVerifier__CommitmentMismatch"
    )


def test_submitRound_rejects_wrong_signer(world):
    task_id = world.start_task()
    signers = list(world.clients)
    signers[2] = new_account(world.chain, ETHER)
    args = world.round_args(task_id, 1, signatures=world.signatures(task_id, 1, signers=signers))
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


@pytest.mark.parametrize("forgery", ["malleated high s", "v not 27 or 28", "no such signer"])
def test_submitRound_rejects_malformed_signature(world, forgery):
    """OZ's ECDSA.tryRecover refuses them; the round reverts with the protocol's own error."""
    task_id = world.start_task()
    signatures = world.signatures(task_id, 1)
    r, s, v = signatures[2][:32], int.from_bytes(signatures[2][32:64], "big"), signatures[2][64]
    signatures[2] = {
        "malleated high s": r + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - v]),  # ecrecover accepts it
        "v not 27 or 28": r + s.to_bytes(32, "big") + bytes([v + 2]),
        "no such signer": b"\x01" * 64 + bytes([27]),
    }[forgery]
    args = world.round_args(task_id, 1, signatures=signatures)
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


def test_eip712_domain_and_digest_are_what_clients_sign(world):
    tasks = world.protocol.tasks
    fields, name, version, chain_id, contract, salt, extensions = tasks.functions.eip712Domain().call()
    assert (fields, name, version, chain_id, contract) == (
        b"\x0f",
        "StakeLearn",
        "1",
        world.chain.chain_id,
        tasks.address,
    )
    assert salt == bytes(32) and extensions == []
    update = UpdateCommitment(world.chain.chain_id, tasks.address, 7, 2, world.commitments[0])
    signable = encode_typed_data(full_message=update.typed_data())
    assert tasks.functions.domainSeparator().call() == signable.header
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert tasks.functions.updateDigest(7, 2, world.commitments[0]).call() == digest


def test_submitRound_rejects_missing_signature(world):
    task_id = world.start_task()
    args = world.round_args(task_id, 1, signatures=world.signatures(task_id, 1)[:4])
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BatchSize"


def test_submitRound_rejects_replay_at_next_epoch(world):
    task_id = world.start_task()
    epoch1 = world.signatures(task_id, 1)
    world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1, signatures=epoch1))
    assert (
        reverts(
            world,
            world.clients[0],
            world.protocol.tasks,
            "submitRound",
            world.round_args(task_id, 1, signatures=epoch1),
        )
        == "MPSRollup__WrongEpoch"
    )
    args = world.round_args(task_id, 2, signatures=epoch1)
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


def test_submitRound_rejects_replay_on_another_task(world):
    first, second = world.start_task(), world.create_task()
    for client in world.clients:
        world.send(client, world.protocol.tasks, "enroll", second)
    args = world.round_args(second, 1, signatures=world.signatures(first, 1))
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


def test_submitRound_rejects_replay_on_second_deployment(world, small_circuit, proven_round):
    task_id = world.start_task()
    signatures = world.signatures(task_id, 1)
    other = make_world(world.chain, world.prepared, proven_round, world.accuracy)
    other.clients = world.clients  # same clients, already funded; stake again in the new registry
    for client in other.clients:
        other.send(client, other.protocol.registry, "stake", value=ETHER)
    other_task = other.start_task()
    assert other_task == task_id
    args = other.round_args(other_task, 1, signatures=signatures)
    assert reverts(other, other.clients[0], other.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


def test_submitRound_rejects_signature_for_another_chain_id(world, monkeypatch):
    task_id = world.start_task()
    real = world.chain.chain_id
    monkeypatch.setattr(type(world.chain), "chain_id", property(lambda self: real + 1))
    foreign = world.signatures(task_id, 1)
    monkeypatch.undo()
    args = world.round_args(task_id, 1, signatures=foreign)
    assert reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__BadSignature"


def test_submitRound_rejects_public_value_beyond_field(world):
    task_id = world.start_task()
    args = list(world.round_args(task_id, 1))
    instances = list(args[6])
    instances[0] += FIELD  # the same value modulo p, but not a canonical field element
    args[6] = instances
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitRound", tuple(args))
        == "RoundVerifier__InstanceNotInField"
    )


def test_submitRound_rejects_wrong_previous_model(world):
    task_id = world.start_task()
    args = world.round_args(task_id, 1, previous=keccak(text="another model"))
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitRound", args) == "MPSRollup__WrongPreviousModel"
    )


def test_submitRound_equal_updates_keep_distinct_commitments(world, duplicated_round):
    """Slot tags make two equal updates two commitments: nothing marks either as a copy."""
    world.commitments = round_commitments(duplicated_round)
    assert world.commitments[0] != world.commitments[3]
    world.proof_json = duplicated_round / steps.PROOF
    task_id = world.start_task()
    receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    selected, flagged = event["args"]["selectedMask"], event["args"]["flaggedMask"]
    assert selected & 0b01001 == 0b01001  # Krum kept both equal updates
    assert flagged & 0b01001 == 0 and flagged == FLAGGED  # neither copy, only the far client


def test_reportEquivocation_slashes_and_withdraw_requested_before_waits(world):
    task_id = world.start_task()
    cheat = world.clients[2]
    world.send(cheat, world.protocol.registry, "requestWithdrawal")  # tries to leave before the slash
    receipt = world.send(
        world.requester, world.protocol.tasks, "reportEquivocation", *world.equivocation(cheat, task_id, 1)
    )
    (slash,) = world.protocol.tasks.events.ClientSlashed().process_receipt(receipt, errors=DISCARD)
    assert (slash["args"]["client"], slash["args"]["epoch"], slash["args"]["taken"]) == (cheat.address, 1, ETHER // 5)
    assert world.protocol.registry.functions.stakeOf(cheat.address).call() == ETHER * 8 // 10
    assert world.protocol.tasks.functions.record(task_id, cheat.address).call() == [0, 0, 1, 0]
    world.chain.w3.testing.timeTravel(world.chain.w3.eth.get_block("latest")["timestamp"] + 3601)
    assert reverts(world, cheat, world.protocol.registry, "withdraw") == "StakingRegistry__StakeLocked"
    world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    world.finish(task_id)
    world.send(cheat, world.protocol.registry, "withdraw")
    assert world.protocol.registry.functions.slashedTotal().call() == ETHER * 2 // 10
    assert world.balances_add_up()


def test_reportEquivocation_slashes_once_per_epoch(world):
    task_id = world.start_task()
    cheat, tasks = world.clients[1], world.protocol.tasks
    world.send(world.requester, tasks, "reportEquivocation", *world.equivocation(cheat, task_id, 2))
    assert reverts(world, world.requester, tasks, "reportEquivocation", *world.equivocation(cheat, task_id, 2)) == (
        "SlashingManager__AlreadySlashed"
    )
    world.send(world.requester, tasks, "reportEquivocation", *world.equivocation(cheat, task_id, 3))  # another epoch
    assert tasks.functions.record(task_id, cheat.address).call()[2] == 2


def test_reportEquivocation_rejects_what_is_not_one(world):
    """One commitment signed twice, two clients' signatures, a stranger, an epoch out of the task,
    or a task that holds no stake: no slash."""
    task_id = world.start_task()
    tasks, (a, b) = world.protocol.tasks, world.clients[:2]
    _, _, first, first_signature, second, _ = world.equivocation(a, task_id, 1)
    by_b = world.protocol.sign_update(b, task_id, 1, second)
    stranger = world.equivocation(world.requester, task_id, 1)
    for args in (
        (task_id, 1, first, first_signature, first, first_signature),
        (task_id, 1, first, first_signature, second, by_b),
        stranger,
        world.equivocation(a, task_id, EPOCHS + 1),
        world.equivocation(a, task_id, 0),
    ):
        assert reverts(world, world.requester, tasks, "reportEquivocation", *args) == "SlashingManager__NotEquivocation"
    open_task = world.create_task()
    assert reverts(world, world.requester, tasks, "reportEquivocation", *world.equivocation(a, open_task, 1)) == (
        "TaskEscrow__WrongStatus"
    )


def test_slash_penalty_larger_than_stake_takes_what_is_left(small_circuit, proven_round, small_accuracy):
    world = make_world(
        Chain.embedded(),
        prepare(small_circuit),
        proven_round,
        small_accuracy,
        PenaltyPolicy(slash_bps=8_000, outlier_bps=10_000),
    )
    task_id = world.start_task()
    for epoch in (1, 2):
        world.send(
            world.requester,
            world.protocol.tasks,
            "reportEquivocation",
            *world.equivocation(world.clients[4], task_id, epoch),
        )
    assert world.protocol.registry.functions.stakeOf(world.clients[4].address).call() == 0
    assert world.protocol.registry.functions.slashedTotal().call() == ETHER  # 80 %, then the 20 % left
    assert world.balances_add_up()


# --- RewardManager ---------------------------------------------------------------------------


def test_settle_after_the_deadline_forfeits_the_escrow_to_unflagged_clients(world):
    task_id = world.start_task()
    for epoch in (1, 2):
        world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch))
    world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "settle", task_id) == "RewardManager__DeadlineNotPassed"
    )
    world.let_deadline_pass(task_id)
    world.send(world.clients[2], world.protocol.tasks, "settle", task_id)  # anyone
    tasks = world.protocol.tasks.functions
    escrow = EPOCHS * FEE  # no accuracy proof arrived: the requester forfeits all of it
    shares = [tasks.creditOf(c.address).call() for c in world.clients]
    assert shares == [escrow // 4] * 4 + [0]  # the flagged client 4 earns nothing; left-out client 1 is paid
    assert tasks.creditOf(world.requester.address).call() == escrow - sum(shares)  # rounding dust only
    assert world.protocol.task(task_id).status == TaskStatus.COMPLETED
    assert world.balances_add_up()
    before = world.chain.w3.eth.get_balance(world.clients[0].address)
    receipt = world.send(world.clients[0], world.protocol.tasks, "withdrawCredit")
    assert (
        world.chain.w3.eth.get_balance(world.clients[0].address)
        - before
        + receipt["gasUsed"] * receipt["effectiveGasPrice"]
        == escrow // 4
    )
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "withdrawCredit") == "RewardManager__NothingToWithdraw"
    )
    assert world.balances_add_up()


def test_endTraining_by_stranger_while_rounds_land(world):
    task_id = world.start_task()
    world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "endTraining", task_id)
        == "RewardManager__RoundPeriodNotOver"
    )


def test_endTraining_before_any_epoch(world):
    task_id = world.start_task()
    assert reverts(world, world.requester, world.protocol.tasks, "endTraining", task_id) == "RewardManager__NoEpochRun"


def test_endTraining_before_start(world):
    task_id = world.create_task()
    assert reverts(world, world.requester, world.protocol.tasks, "endTraining", task_id) == "TaskEscrow__WrongStatus"


def test_last_epoch_starts_the_evaluation(world):
    task_id = world.start_task()
    for epoch in range(1, EPOCHS + 1):
        receipt = world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch))
    (started,) = world.protocol.tasks.events.EvaluationStarted().process_receipt(receipt, errors=DISCARD)
    block = world.chain.w3.eth.get_block(receipt["blockNumber"])
    assert started["args"]["deadline"] == block["timestamp"] + EVALUATION_SECONDS
    assert world.protocol.task(task_id).status == TaskStatus.EVALUATING
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, EPOCHS + 1))
        == "TaskEscrow__WrongStatus"
    )


def test_submitAccuracy_rejects_another_model_before_verifying(world):
    task_id = world.start_task()
    world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
    args = (task_id, EVALUATION_SALT, b"", [], [], world.commitments[0])  # an update's commitment, not the model's
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitAccuracy", *args) == "RewardManager__WrongModel"
    )
    world.let_deadline_pass(task_id)
    assert (
        reverts(world, world.clients[0], world.protocol.tasks, "submitAccuracy", *args)
        == "RewardManager__DeadlinePassed"
    )


def test_revealEvaluationSet_rejects_another_set(world):
    task_id = world.start_task()
    world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, 1))
    world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
    # commitments that do not hash to the task's: another set, the same ones swapped, one left out
    x, labels = EVALUATION_COMMITMENTS
    for other in (x + bytes(64), labels + x, x, REVEALED + bytes(1)):
        reveal = (task_id, EVALUATION_SALT, other)
        assert (
            reverts(world, world.requester, world.protocol.tasks, "revealEvaluationSet", *reveal)
            == "RewardManager__WrongEvaluationSet"
        )
    # the right commitments under a wrong salt
    assert (
        reverts(world, world.requester, world.protocol.tasks, "revealEvaluationSet", task_id, bytes(32), REVEALED)
        == "RewardManager__WrongEvaluationSet"
    )


def test_settle_after_a_reveal_pays_the_work_share_and_burns_the_rest(world):
    task_id = world.start_task()
    for epoch in (1, 2):
        world.send(world.clients[0], world.protocol.tasks, "submitRound", world.round_args(task_id, epoch))
    world.send(world.requester, world.protocol.tasks, "endTraining", task_id)
    world.send(world.requester, world.protocol.tasks, "revealEvaluationSet", task_id, EVALUATION_SALT, REVEALED)
    world.let_deadline_pass(task_id)  # nobody proved: the requester is not at fault
    world.send(world.clients[1], world.protocol.tasks, "settle", task_id)
    tasks = world.protocol.tasks.functions
    work = 2 * FEE * world.protocol.config.work_bps // 10_000
    shares = [tasks.creditOf(c.address).call() for c in world.clients]
    assert shares == [work // 4] * 4 + [0]
    burnt = 2 * FEE - work
    assert tasks.burntHeld().call() == burnt  # the requester does not get the missed share back
    assert tasks.creditOf(world.requester.address).call() == EPOCHS * FEE - sum(shares) - burnt  # the unrun epoch
    assert world.balances_add_up()


REENTERER = """
pragma solidity ^0.8.20;
contract Reenterer {
    address private immutable _target;
    bytes private _reenter;
    bytes public reason; // what the re-entrant call reverted with
    constructor(address target) { _target = target; }
    function call(bytes calldata data, bytes calldata reenter) external payable {
        _reenter = reenter;
        (bool ok, bytes memory r) = _target.call{value: msg.value}(data);
        if (!ok) { assembly { revert(add(r, 32), mload(r)) } }
    }
    // Re-enters when paid, and lets the payment succeed whatever the re-entrant call did.
    receive() external payable { (bool ok, bytes memory r) = _target.call(_reenter); if (!ok) reason = r; }
}
"""
REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]


def deploy_reenterer(world, target):
    artifact = compile_sources({"Reenterer.sol": REENTERER})["Reenterer"]
    address, _ = world.chain.deploy(artifact, target)
    return address, world.chain.contract(address, artifact.abi)


REENTRANT = """
pragma solidity ^0.8.20;
interface ICredit { function withdrawCredit() external; function createTask(bytes calldata) external payable; }
contract ReentrantRequester {
    address private immutable _target;
    uint256 public reentered;
    constructor(address target) { _target = target; }
    function call(bytes calldata data) external payable { (bool ok, bytes memory r) = _target.call{value: msg.value}(data); if (!ok) { assembly { revert(add(r, 32), mload(r)) } } }
    function withdraw() external { ICredit(_target).withdrawCredit(); }
    receive() external payable { reentered += 1; ICredit(_target).withdrawCredit(); }
}
"""


def test_withdrawCredit_reentrant_receiver_gets_nothing_extra(world):
    attacker_artifact = compile_sources({"Reentrant.sol": REENTRANT})["ReentrantRequester"]
    address, _ = world.chain.deploy(attacker_artifact, world.protocol.tasks.address)
    attacker = world.chain.contract(address, attacker_artifact.abi)
    params = world.params()
    value = 10**16 + params.escrow
    data = world.protocol.tasks.encode_abi("createTask", args=[params.as_abi()])
    world.send(world.requester, attacker, "call", data, value=value)
    task_id = world.protocol.tasks.functions.taskCount().call()
    # The attacker contract is the requester: cancel through it, then withdraw re-entrantly.
    world.send(world.requester, attacker, "call", world.protocol.tasks.encode_abi("cancel", args=[task_id]))
    assert world.protocol.tasks.functions.creditOf(address).call() == EPOCHS * FEE
    receipt = world.chain.send(world.requester, attacker.functions.withdraw())
    assert receipt["status"] == 0  # the re-entrant call reverts, so the whole withdrawal does
    assert world.chain.w3.eth.get_balance(address) == 0
    assert world.protocol.tasks.functions.creditOf(address).call() == EPOCHS * FEE
    assert world.balances_add_up()


def test_withdrawCredit_reentrant_call_is_stopped_by_the_guard(world):
    tasks = world.protocol.tasks
    address, reenterer = deploy_reenterer(world, tasks.address)
    params = world.params()
    world.send(
        world.requester,
        reenterer,
        "call",
        tasks.encode_abi("createTask", args=[params.as_abi()]),
        b"",
        value=world.protocol.config.base_fee_wei + params.escrow,
    )
    task_id = tasks.functions.taskCount().call()
    world.send(world.requester, reenterer, "call", tasks.encode_abi("cancel", args=[task_id]), b"")
    withdraw = tasks.encode_abi("withdrawCredit")
    world.send(world.requester, reenterer, "call", withdraw, withdraw)  # receive() calls withdrawCredit again
    assert reenterer.functions.reason().call() == REENTRANT_CALL
    assert world.chain.w3.eth.get_balance(address) == EPOCHS * FEE  # paid once
    assert tasks.functions.creditOf(address).call() == 0 and world.balances_add_up()
