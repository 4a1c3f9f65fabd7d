"""The watcher of an optimistic task (pipeline.node.watcher): its judgement of a claim against
the bundle (pure), and the Watcher on the embedded chain, driven step by step with time travel,
voiding a false round and leaving a true one alone."""

import shutil

import pytest
from eth_utils import keccak

from stakelearn.pipeline.chain.gateway import TransactionRejected
from stakelearn.pipeline.contracts.optimistic import (
    Bundle,
    Claim,
    Kind,
    Outcome,
    State,
    TreeNode,
    answer,
    choose_child,
    finalize,
    gram_tree,
    propose,
)
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.pipeline.node.watcher import Watcher, judge, open_bundle, steering_tree
from stakelearn.prover.rounds import open_round

from .world import INITIAL_MODEL

UNSIGNED = [bytes(65)] * 5  # judge() never reads the signatures


@pytest.fixture(scope="module")
def bundle(proven_round):
    return Bundle(open_round(proven_round), proven_round)


def lie(claim: Claim, what: str) -> Claim:
    """``claim`` with one field false."""
    if what == "selection":  # swap clients 0 and 1 in and out
        return Claim(**{**claim.__dict__, "selected_mask": claim.selected_mask ^ 0b11})
    if what == "score":  # client 0's score inflated past client 4's: it would be flagged
        scores = list(claim.scores)
        scores[0] = scores[4] * 10
        return Claim(**{**claim.__dict__, "scores": scores})
    if what == "aggregate":  # another aggregate: the model the proposer would like recorded
        return Claim(**{**claim.__dict__, "commitments": claim.commitments[:-64] + bytes(range(64))})
    raise ValueError(what)


def descend(proposer_tree, watcher_tree) -> int:
    """A tree dispute played out: the proposer reveals its own tree's children, the watcher picks
    by ``choose_child``; the leaf it ends at."""
    level, index = len(proposer_tree) - 1, 0
    while level > 0:
        left, right = (proposer_tree[level - 1][2 * index + i].digest for i in (0, 1))
        index = 2 * index + choose_child(watcher_tree, level, index, left, right)
        level -= 1
    return index


@pytest.mark.parametrize("bad", [0, 3, 4])
def test_a_tree_dispute_ends_at_the_chunk_the_watcher_cannot_back(bad):
    leaves = [TreeNode(keccak(text=f"chunk {k}"), [k, 2 * k, 3 * k]) for k in range(5)]
    honest = gram_tree(leaves)  # the proposer claims all five chunks; the watcher misses or rejects one
    assert descend(honest, steering_tree([None if k == bad else leaf for k, leaf in enumerate(leaves)], 3)) == bad
    # A proposer whose tree lies about one chunk's partial sum is led to that chunk by the true tree.
    forged = [*leaves[:bad], TreeNode(leaves[bad].inner, [7, 7, 7]), *leaves[bad + 1 :]]
    assert descend(gram_tree(forged), honest) == bad


def true_claim(bundle, task_id=1):
    return bundle.claim(task_id, 1, INITIAL_MODEL, UNSIGNED)


def test_judge_accepts_the_true_claim(bundle):
    verdict = judge(true_claim(bundle), None, bundle, chunked=False)
    assert verdict.holds and verdict.kind == Kind.NONE


@pytest.mark.parametrize(
    "what, words",
    [
        ("selection", "it selects clients [1, 2, 3], the proof [0, 2, 3]"),
        ("score", "scores of clients [0] are not the proven ones (it flags [0, 4])"),
        ("aggregate", "aggregate's"),
    ],
)
def test_judge_flags_each_lie(bundle, what, words):
    verdict = judge(
        lie(true_claim(bundle), what), Outcome(1, 0, 0, 0b10001, bytes(32), bytes(32)), bundle, chunked=False
    )
    assert verdict.kind == Kind.ROUND and words in verdict.reason, verdict


def test_judge_calls_a_missing_or_other_bundle_withheld(bundle, proven_round, tmp_path):
    claim = true_claim(bundle)
    for uri in (str(tmp_path / "nowhere"), "https://example.org/bundle", ""):
        missing, why = open_bundle(uri)
        assert missing is None
        verdict = judge(claim, None, missing, chunked=False, defect=why)
        assert verdict.kind == Kind.ROUND and verdict.reason.startswith("bundle withheld"), verdict
    assert judge(claim, None, None, chunked=True, defect="gone").kind == Kind.TREE
    # Another folder at the URI (one file more than the proposer's): its digest is not the claim's.
    other = tmp_path / "other"
    shutil.copytree(proven_round, other)
    (other / "note.txt").write_text("not the claimed bundle")
    copy, why = open_bundle(f"file://{other}")
    assert why is None
    verdict = judge(claim, None, copy, chunked=False)
    assert verdict.kind == Kind.ROUND and "digest" in verdict.reason
    # The claim's own folder that does not verify: withheld as well.
    verdict = judge(claim, None, bundle, chunked=False, defect="the proof does not verify")
    assert verdict.kind == Kind.ROUND and "does not verify" in verdict.reason


@pytest.fixture
def game(world, bundle):
    task_id = world.start_task(verification=1)
    proposer, watcher, other = (new_account(world.chain, 10 * ETHER) for _ in range(3))
    return world, task_id, proposer, watcher, other


def signed_claim(world, bundle, task_id) -> Claim:
    return bundle.claim(task_id, 1, INITIAL_MODEL, world.signatures(task_id, 1))


def test_watcher_voids_a_false_claim_and_frames_nobody(game, bundle):
    world, task_id, proposer, watcher, other = game
    rounds = world.protocol.rounds
    claim = lie(signed_claim(world, bundle, task_id), "aggregate")
    nonce, outcome, _ = propose(world.protocol, proposer, claim, f"file://{bundle.folder}")
    lines, other_lines = [], []
    watching = Watcher(world.protocol, watcher, task_id, say=lines.append)
    second = Watcher(world.protocol, other, task_id, say=other_lines.append)
    watching.step()
    second.step()
    assert lines == [
        f"task {task_id} epoch 1 (claim {nonce}): challenged (round): the aggregate's commitment is not the one the bundle proves"
    ]
    assert other_lines[0].endswith("the aggregate's commitment is not the one the bundle proves")
    # The proposer cannot answer: the proof is of another aggregate.
    with pytest.raises(TransactionRejected, match="RoundVerifier__CommitmentMismatch"):
        answer(world.protocol, proposer, claim, outcome, watcher.address, bundle)
    deadline = rounds.functions.dispute(task_id, nonce, watcher.address).call()[2]
    world.travel_to(deadline)
    watching.step()  # not yet: the proposer still has its deadline's second
    assert len(lines) == 1
    world.travel_to(deadline + 1)
    watching.step()
    assert lines[-1] == f"task {task_id} epoch 1 (claim {nonce}): proposer timed out: round void"
    assert rounds.functions.pending(task_id).call()[0] == State.VOID
    bond = rounds.functions.proposerBond(task_id).call()
    challenger_bond = rounds.functions.CHALLENGER_BOND().call()
    assert rounds.functions.creditOf(watcher.address).call() == challenger_bond + bond // 2
    # The second watcher's dispute outlived the round: it takes its bond back.
    second.step()
    assert other_lines[-1].endswith("round voided by another dispute: bond back")
    assert rounds.functions.creditOf(other.address).call() == challenger_bond
    assert not watching.disputes and not second.disputes
    watching.step()
    assert len(lines) == 2, "nothing left to do"
    # Nobody flagged, absent or paid for the void epoch, which is open again.
    for client in world.clients:
        assert world.protocol.tasks.functions.record(task_id, client.address).call() == [0, 0, 0, 0]
    assert world.protocol.task(task_id).epochs_run == 0
    assert world.balances_add_up()


@pytest.mark.parametrize("what", ["selection", "score"])
def test_watcher_voids_a_withheld_lie(game, bundle, tmp_path, what):
    """A proposer that lies and publishes nothing at the URI it names: the watcher challenges the
    withheld bundle, the proposer has no proof of its lie to answer with, the round is void."""
    world, task_id, proposer, watcher, _ = game
    rounds = world.protocol.rounds
    claim = lie(signed_claim(world, bundle, task_id), what)
    nonce, _, _ = propose(world.protocol, proposer, claim, (tmp_path / "never-published").as_uri())
    lines = []
    watching = Watcher(world.protocol, watcher, task_id, say=lines.append)
    watching.step()
    assert lines[0].startswith(f"task {task_id} epoch 1 (claim {nonce}): challenged (round): ")
    world.travel_to(rounds.functions.dispute(task_id, nonce, watcher.address).call()[2] + 1)
    watching.step()
    assert lines[-1].endswith("proposer timed out: round void")
    for client in world.clients:
        assert world.protocol.tasks.functions.record(task_id, client.address).call() == [0, 0, 0, 0]
    assert world.balances_add_up()


def test_watcher_leaves_a_true_claim_alone(game, bundle):
    world, task_id, proposer, watcher, _ = game
    rounds = world.protocol.rounds
    claim = signed_claim(world, bundle, task_id)
    nonce, outcome, _ = propose(world.protocol, proposer, claim, str(bundle.folder))
    lines = []
    watching = Watcher(world.protocol, watcher, task_id, say=lines.append)
    watching.step()
    assert lines == [
        f"task {task_id} epoch 1 (claim {nonce}): checked ok: selects clients [0, 2, 3] with the proven scores"
    ]
    assert not watching.disputes
    world.travel_to(rounds.functions.pending(task_id).call()[3] + 1)
    watching.step()
    assert len(lines) == 1
    finalize(world.protocol, proposer, claim, outcome)
    assert world.protocol.task(task_id).epochs_run == 1
    assert rounds.functions.creditOf(watcher.address).call() == 0


@pytest.mark.parametrize(
    "options, env, error",
    [
        (["--poll", "0"], {"WATCH_KEY": "0x" + "11" * 32}, "--poll must be a positive number of seconds, not 0.0"),
        (["--until-epoch", "0"], {"WATCH_KEY": "0x" + "11" * 32}, "--until-epoch must be 1 or more, not 0"),
        ([], {}, "no key: put the private key in the environment variable WATCH_KEY"),
        ([], {"WATCH_KEY": "0x" + "11" * 32}, "no EVM node answers at http://127.0.0.1:"),
    ],
)
def test_watch_refuses_bad_input_in_one_line(options, env, error, capsys, monkeypatch):
    from stakelearn.pipeline.chain.anvil import free_port
    from stakelearn.pipeline.cli import main

    monkeypatch.delenv("WATCH_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rpc = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    command = ["watch", "--rpc-url", rpc, "--contract", "0x" + "22" * 20, "--task", "1", "--private-key-env"]
    code = main([*command, "WATCH_KEY", *options])
    printed = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(printed) == 1 and printed[0].startswith(f"stakelearn: error: {error}"), printed
