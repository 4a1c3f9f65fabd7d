"""Finding 2: a requester chose the verifier contracts (one returning mask 0, one always
reverting), got every honest client flagged and slashed and took the escrow back. Tasks must
name a verifier pair the protocol approved; clients check the verifiers' code before enrolling;
``audit`` checks the verifiers themselves."""

import pytest

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.contracts.protocol import check_task_verifiers
from stakelearn.verifier_contracts.solc import compile_sources

from ..verifier_contracts.world import EPOCHS, FEE

ROGUE = """
pragma solidity ^0.8.20;
contract RogueRoundVerifier {
    address public verifier;
    uint256 public clients;
    uint256 public byzantine = 1;
    uint256 public selected = 3;
    uint8 public aggregation;
    bytes32 public vkaDigest;
    bytes32 public absentCommitment;
    constructor(address verifier_, uint256 n, bytes32 vkaDigest_, bytes32 absent) {
        verifier = verifier_; clients = n; vkaDigest = vkaDigest_; absentCommitment = absent;
    }
    function verifyRound(bytes calldata, uint256[] calldata, bytes32[] calldata, bytes calldata)
        external pure returns (uint256, uint256, uint256[] memory scores) {
        scores = new uint256[](5);  // nobody selected: everyone an outlier
    }
}
contract RogueAccuracyVerifier {
    uint256 public samples;
    constructor(uint256 samples_) { samples = samples_; }
    function verifyAccuracy(bytes calldata, uint256[] calldata, bytes32[] calldata, bytes calldata)
        external pure returns (uint256, uint256, bytes32) { revert("no proof ever passes"); }
}
"""


@pytest.fixture(scope="module")
def rogue_artifacts():
    return compile_sources({"Rogue.sol": ROGUE})


def deploy_rogue_pair(world, rogue_artifacts):
    """The requester's own verifiers, claiming the real ones' digests and shape."""
    real = world.protocol.round_verifier.contract.functions
    round_address, _ = world.chain.deploy(
        rogue_artifacts["RogueRoundVerifier"],
        real.verifier().call(),
        5,
        real.vkaDigest().call(),
        real.absentCommitment().call(),
    )
    accuracy_address, _ = world.chain.deploy(rogue_artifacts["RogueAccuracyVerifier"], 32)
    return round_address, accuracy_address


def create(world, verifiers):
    params = world.params(verifiers=verifiers)
    return world.revert_name(
        world.requester,
        world.protocol.tasks,
        "createTask",
        params.as_abi(),
        value=world.protocol.config.base_fee_wei + EPOCHS * FEE,
    )


def test_createTask_rejects_the_requesters_own_verifiers(world, rogue_artifacts):
    assert create(world, deploy_rogue_pair(world, rogue_artifacts)) == "TaskEscrow__VerifierNotApproved"


def test_createTask_rejects_a_rule_its_verifier_does_not_prove(world):
    """A task says NNM + Multi-Krum (so clients expect mixing), its verifier proves plain Multi-Krum:
    the chain records the rule only when the approved verifier proves exactly that rule."""
    params = world.params(aggregation=1)
    revert = world.revert_name(
        world.requester,
        world.protocol.tasks,
        "createTask",
        params.as_abi(),
        value=world.protocol.config.base_fee_wei + EPOCHS * FEE,
    )
    assert revert == "TaskEscrow__VerifierRule"
    assert world.protocol.round_verifier.contract.functions.aggregation().call() == 0


def test_createTask_rejects_an_unpaired_approved_verifier(world, rogue_artifacts):
    _, rogue_accuracy = deploy_rogue_pair(world, rogue_artifacts)
    real_round = world.protocol.round_verifier.contract.address
    assert create(world, (real_round, rogue_accuracy)) == "TaskEscrow__VerifierNotApproved"


def test_only_governance_approves_verifiers(world, rogue_artifacts):
    pair = deploy_rogue_pair(world, rogue_artifacts)
    assert (
        world.revert_name(world.requester, world.protocol.tasks, "approveVerifiers", *pair)
        == "TaskEscrow__NotGovernance"
    )


def test_clients_and_audit_refuse_rogue_verifiers_even_if_approved(world, rogue_artifacts):
    """Governance approved a rogue pair by mistake: a client's check of the code still refuses
    to enroll, and the audit reports the task."""
    from stakelearn.pipeline.apps.audit import audit_chain

    pair = deploy_rogue_pair(world, rogue_artifacts)
    tasks = world.protocol.tasks
    world.chain.execute(world.chain.payer, tasks, "approveVerifiers", *pair)
    assert create(world, pair) is None
    task_id = world.create_task(verifiers=pair)
    with pytest.raises(StakeLearnError, match="round verifier .* is not the protocol's RoundVerifier"):
        check_task_verifiers(world.protocol, task_id, world.round, world.accuracy)
    problems, _ = audit_chain(world.protocol, task_id, (world.round, world.accuracy))
    assert any("not the protocol's RoundVerifier" in p for p in problems)


def test_clients_accept_the_protocols_verifiers(world):
    task_id = world.create_task()
    check_task_verifiers(world.protocol, task_id, world.round, world.accuracy)  # raises if not


def test_client_with_another_circuit_refuses(world, proven_round):
    """The right contracts, but pinned to a circuit the client does not commit with."""
    task_id = world.create_task()
    with pytest.raises(StakeLearnError, match="accuracy verifier"):
        check_task_verifiers(world.protocol, task_id, world.round, world.prepared)
