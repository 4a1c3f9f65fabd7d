"""`stakelearn enroll` compares the task's verifiers' runtime code with the protocol's verifiers
for the task's circuits when the client gives the task's circuit options, as the demo's and the
Flower example's clients do (security review, finding 10 a); without them it warns in one line
that only governance's approval was checked. Before, enroll checked the approval only, so a
client enrolled in a task whose approved verifiers are not the ones for its circuits.

On an anvil node: the protocol of the test world, whose deployment pair (approved) is for the
world's small circuits, and a task posted as `demo --chunk 256` would post it (softmax, 5
clients, 8 evaluation samples, fixed point 2^-7 within +-1) on a pair deployed for exactly those
circuits."""

from dataclasses import replace

import pytest
from eth_account import Account

from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.verifiers import deploy_accuracy_verifier
from stakelearn.pipeline.node.client import TaskCircuitOptions, task_round
from stakelearn.prover.circuit import prepare

from ..pipeline.test_cli_third_party import run_cli
from ..verifier_contracts.world import ETHER, make_world

SAMPLES = 8
OPTIONS = ("--model", "softmax", "--chunk", "256", "--scale-bits", "7", "--clip", "1.0")


def post_demo_task(world) -> int:
    """A task as `demo --chunk 256` posts it, on verifiers deployed for its own circuits."""
    params = replace(world.params(epochs=1), evaluation_size=SAMPLES)
    options = TaskCircuitOptions(fixed_point=FixedPoint(scale_bits=7, clip=1.0), chunk=256)
    round_, accuracy = task_round(params, options)
    reusable, tasks = world.protocol.round_verifier.verifier, world.protocol.tasks
    round_verifier = deploy_round_verifier(world.chain, round_, reusable)
    accuracy_verifier = deploy_accuracy_verifier(world.chain, accuracy, reusable, SAMPLES)
    pair = (round_verifier.contract.address, accuracy_verifier.address)
    world.chain.execute(world.chain.payer, tasks, "approveVerifiers", *pair)
    params = replace(params, verifier=pair[0], accuracy_verifier=pair[1])
    fee = world.protocol.config.base_fee_wei + params.escrow
    world.send(world.requester, tasks, "createTask", params.as_abi(), value=fee)
    return tasks.functions.taskCount().call()


@pytest.mark.anvil
def test_enroll_with_the_tasks_circuit_options_refuses_verifiers_of_other_circuits(
    small_circuit, proven_round, small_accuracy
):
    with running_anvil() as node:
        world = make_world(Chain.rpc(node.url), prepare(small_circuit), proven_round, small_accuracy)
        tasks = world.protocol.tasks
        other = world.create_task()  # approved by governance, but for the world's circuits
        demo_task = post_demo_task(world)
        key = Account.create()
        world.chain.fund(key.address, 3 * ETHER)
        env = {"STAKELEARN_KEY": key.key.hex()}
        chain = ("--rpc-url", node.url, "--contract", tasks.address)
        assert run_cli("stake", *chain, env=env).returncode == 0

        refused = run_cli("enroll", *chain, "--task", other, *OPTIONS, env=env)
        error = refused.stderr.strip().splitlines()[-1]  # after the progress of building its own circuits
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert error.startswith(f"stakelearn: error: task {other}: its round verifier at")
        assert "is not the protocol's ChunkedRoundVerifier for this client's circuits; do not enroll" in error
        assert key.address not in tasks.functions.clientsOf(other).call()

        enrolled = run_cli("enroll", *chain, "--task", demo_task, *OPTIONS, env=env)
        assert enrolled.returncode == 0, enrolled.stderr
        assert "the protocol's code for the task's circuits" in enrolled.stdout and "warning" not in enrolled.stderr
        assert key.address in tasks.functions.clientsOf(demo_task).call()

        warned = run_cli("enroll", *chain, "--task", other, env=env)  # no circuit options: approval only
        assert warned.returncode == 0, warned.stderr
        (warning,) = warned.stderr.strip().splitlines()
        assert warning.startswith("stakelearn: warning:") and "code was not compared" in warning
        assert key.address in tasks.functions.clientsOf(other).call()
