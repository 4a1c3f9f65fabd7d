"""A newcomer's path from "my model" to "verified on chain", only through the CLI, on an anvil
node the test starts: stake, enroll, commit and sign, prove, submit, verify (against the task's
own RoundVerifier). The deployment and the task come from the protocol's Python API, as a
requester's would."""

import json

import numpy as np
import pytest
from eth_account import Account

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.types import TaskStatus
from stakelearn.prover.circuit import prepare

from ..verifier_contracts.world import ETHER, make_world
from .test_cli_third_party import CIRCUIT, commit_cli, run_cli


@pytest.mark.anvil
@pytest.mark.slow  # 74 s; tests/pipeline/test_cli_third_party.py and test_cli_chunked.py walk the CLI in CI
def test_stake_enroll_commit_prove_submit_verify(small_circuit, proven_round, small_accuracy, small_updates, tmp_path):
    with running_anvil() as node:
        world = make_world(Chain.rpc(node.url), prepare(small_circuit), proven_round, small_accuracy)
        task_id = world.create_task()
        tasks = world.protocol.tasks
        chain = ("--rpc-url", node.url, "--contract", tasks.address)
        keys = [Account.create() for _ in range(5)]
        signed, updates = [], []
        for key in keys:
            world.chain.fund(key.address, 3 * ETHER)
            env = {"STAKELEARN_KEY": key.key.hex()}
            for step in (("stake",), ("enroll", "--task", task_id)):
                result = run_cli(step[0], *chain, *step[1:], env=env)
                assert result.returncode == 0, result.stderr
        assert world.protocol.task(task_id).status == TaskStatus.ACTIVE  # five enrolled
        for slot, key in enumerate(keys):
            updates.append(tmp_path / f"model_{slot}.npy")
            np.save(updates[-1], small_updates[slot] / 128.0)
            signed.append(tmp_path / f"signed_{slot}.json")
            result = commit_cli(
                updates[-1], slot, signed[-1], key.key.hex(), task_id, world.chain.chain_id, tasks.address
            )
            assert result.returncode == 0, result.stderr
        folder = tmp_path / "round"
        assert run_cli("prove", *updates, *CIRCUIT, "--signed", *signed, "--out", folder).returncode == 0
        aggregator = {"STAKELEARN_KEY": keys[0].key.hex()}
        result = run_cli("submit", folder, *chain, "--task", task_id, "--epoch", 2, env=aggregator)
        assert result.returncode == 1 and "signed for task" in result.stderr  # the clients signed epoch 1
        result = run_cli("submit", folder, *chain, "--task", task_id, "--epoch", 1, env=aggregator)
        assert result.returncode == 0, result.stderr
        assert world.protocol.task(task_id).epochs_run == 1
        replay = run_cli("submit", folder, *chain, "--task", task_id, "--epoch", 1, env=aggregator)
        assert replay.returncode == 1 and "MPSRollup__WrongEpoch" in replay.stderr

        verifier = world.protocol.round_verifier.contract.address
        result = run_cli("verify", folder, "--rpc-url", node.url, "--verifier", verifier)
        assert result.returncode == 0 and "accepts the round" in result.stdout, result.stderr
        selected = json.loads((folder / "public.json").read_text())["selected"]
        assert f"selection {sum(1 << i for i in selected):b}" in result.stdout
    assert node.process.poll() is not None
