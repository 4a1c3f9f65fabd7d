"""`stakelearn watch` as its own process against anvil (a block a second, short optimistic
periods): a dishonest proposer's false round is challenged and voided by the watcher alone; the
honest round that follows passes unchallenged and is finalized, and the watcher then exits."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.optimistic import Bundle, State, finalize, propose
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.types import ETHER, OptimisticTerms
from stakelearn.prover.circuit import prepare
from stakelearn.prover.rounds import open_round

from .test_watcher import lie
from .world import INITIAL_MODEL, make_world

# Long enough for the watcher to verify a bundle on two busy cores, short enough for a test.
TERMS = OptimisticTerms(challenge_seconds=30, answer_seconds=8)
STAKELEARN = Path(sys.executable).parent / "stakelearn"


def wait_for(condition, what: str, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s; the watcher said:\n{log.read_text()}")
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.anvil
def test_watch_voids_a_false_round_and_passes_a_true_one(small_circuit, proven_round, small_accuracy, tmp_path):
    with running_anvil(block_time=1) as node:
        world = make_world(Chain.rpc(node.url), prepare(small_circuit), proven_round, small_accuracy, optimistic=TERMS)
        task_id = world.start_task(verification=1)
        rounds = world.protocol.rounds
        proposer, watcher = new_account(world.chain, 10 * ETHER), new_account(world.chain, 10 * ETHER)
        bundle = Bundle(open_round(proven_round), proven_round)
        true = bundle.claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))
        log = tmp_path / "watch.log"
        command = [str(STAKELEARN), "watch", "--rpc-url", node.url, "--contract", world.protocol.tasks.address]
        command += ["--task", str(task_id), "--private-key-env", "WATCHER_KEY", "--poll", "1", "--until-epoch", "1"]
        env = {**os.environ, "WATCHER_KEY": "0x" + bytes(watcher.key).hex()}
        # A task that does not exist, or an eager one, is refused in one line.
        eager = world.create_task()
        for task, error in ((99, "task 99 does not exist"), (eager, f"task {eager} is verified eagerly")):
            wrong = [*command[:-7], str(task), *command[-6:], "--once"]
            result = subprocess.run(wrong, env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith(
                f"stakelearn: error: {error}"
            ), result.stderr
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for(lambda: "watching task" in log.read_text(), "the watcher's start", log)
            nonce, _, _ = propose(world.protocol, proposer, lie(true, "aggregate"), f"file://{proven_round}")
            wait_for(
                lambda: rounds.functions.pending(task_id).call()[0] == State.VOID, "the false round's voiding", log
            )
            wait_for(lambda: "round void" in log.read_text(), "the watcher's line", log, 10)
            bond = rounds.functions.proposerBond(task_id).call()
            assert rounds.functions.creditOf(watcher.address).call() == TERMS.challenger_bond_wei + bond // 2
            for client in world.clients:
                assert world.protocol.tasks.functions.record(task_id, client.address).call() == [0, 0, 0, 0]
            # The same epoch again, claimed truly: checked, left alone, final after its window.
            honest, outcome, _ = propose(world.protocol, proposer, true, f"file://{proven_round}")
            wait_for(lambda: f"(claim {honest}): checked ok" in log.read_text(), "the honest claim's check", log)
            end = rounds.functions.pending(task_id).call()[3]
            wait_for(
                lambda: world.chain.latest_timestamp() > end, "the window's end", log, TERMS.challenge_seconds + 30
            )
            before = world.chain.w3.eth.get_balance(proposer.address)
            receipt = finalize(world.protocol, proposer, true, outcome)
            spent = receipt["gasUsed"] * receipt["effectiveGasPrice"]
            bond = rounds.functions.proposerBond(task_id).call()
            assert world.chain.w3.eth.get_balance(proposer.address) == before - spent + bond, "the bond came back"
            assert world.protocol.task(task_id).epochs_run == 1
            assert process.wait(timeout=60) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        lines = log.read_text().splitlines()
        assert [line.split(": ", 1)[1].split(":")[0] for line in lines if line.startswith("task 1 epoch")] == [
            "challenged (round)",
            "proposer timed out",
            "checked ok",
        ], lines
        assert lines[-1] == "task 1 has 1 final epochs: done"
