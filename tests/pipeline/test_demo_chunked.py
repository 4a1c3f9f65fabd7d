"""The demo's aggregator on a task proven in chunks (`stakelearn demo --chunk`): each epoch's
round is proven chunk by chunk, its chunk proofs staged on chain before the round, the final
accuracy proven over the model's chunks, and the audit rebuilds and re-checks it all from the
chain and the run folder; the softmax model in 3 chunks, and the MLP in 10 with its accuracy
proven in batches. Slow (about 3 and 10 min on a quiet machine): CI runs the one-proof demo
(test_demo.py) and every part of the chunked path (tests/security/test_chunked_*.py,
test_cli_chunked.py); `scripts/test.sh --slow` runs this."""

from dataclasses import replace

import pytest

from stakelearn.pipeline.apps.audit import audit_chain, audit_run
from stakelearn.pipeline.apps.demo import run_demo
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.pipeline.node.run_folder import load_run, round_folder, run_round
from stakelearn.pipeline.node.task_lifecycle import PROTOCOL
from stakelearn.prover.rounds import ChunkedRound, open_round

# The softmax model's 650 parameters in 3 chunks of 256; one attacker among five clients.
CHUNKED_TASK = TaskConfig(
    clients=5, byzantine=1, attackers=1, attack="sign_flip", epochs=2, evaluation_samples=16, chunk=256
)


# `demo --model mlp`: 64 -> 128 -> 10 (9,610 parameters) in 10 chunks of 1,024, its accuracy on
# 8 samples proven in 2 batches of 4.
# Two epochs train it to about 0.86 test accuracy: the target is set below what 8 samples may show.
MLP_TASK = replace(CHUNKED_TASK, evaluation_samples=8, hidden=128, chunk=1024, accuracy_batch=4, target_accuracy=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("task", [CHUNKED_TASK, MLP_TASK], ids=["softmax", "mlp"])
def test_the_demo_runs_a_task_proven_in_chunks(tmp_path, task):
    chain = Chain.embedded()
    out = tmp_path / "run"
    summary = run_demo(task, out, chain=chain)
    assert summary["circuit"]["chunk"] == task.chunk
    assert summary["outcome"] == {
        "attackers": [4],
        "attackers_flagged": [4],
        "honest_flagged": [],
        "slashed": [],
        "honest_rewarded": True,
    }
    assert summary["accuracy_proof"]["target_reached"]
    for epoch in (1, 2):
        folder = round_folder(out, epoch)
        round_ = open_round(folder)
        assert isinstance(round_, ChunkedRound) and round_.verify(folder).chunks == -(-task.dimension // task.chunk)
    # each epoch's gas counts its staged chunk proofs (about 2 M gas each) and the round
    assert all(e["gas_used"] > 6_000_000 for e in summary["epochs"])
    run = load_run(out)
    protocol = attach_protocol(chain, run["addresses"], PROTOCOL)
    round_, accuracy = run_round(run)
    problems, rounds = audit_chain(protocol, run["task_id"], (round_, accuracy))
    assert problems == [] and [r["epoch"] for r in rounds] == [1, 2]
    assert audit_run(out, protocol, round_, rounds) == []
