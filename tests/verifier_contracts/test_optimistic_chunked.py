"""Optimistic rounds of a chunked task on the embedded EVM, with real proofs (5 clients, 20
coordinates in 3 chunks of 8, so the partial-sum tree has a padding leaf): an honest proposer
survives every kind of dispute, down to one chunk proof checked against the clients' signed
Merkle roots; a forged Gram sum and a chunk that was never proven are each found by a watcher,
which steers the bisection to the leaf the proposer cannot back, and voids the round."""

import shutil

import pytest

from stakelearn.pipeline.contracts.optimistic import (
    Bundle,
    Claim,
    Kind,
    State,
    TreeNode,
    answer,
    bundle_digest,
    challenge,
    dispute_of,
    finalize,
    gram_tree,
    propose,
)
from stakelearn.pipeline.contracts.protocol import new_account
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.pipeline.node.watcher import Watcher
from stakelearn.prover.rounds import ChunkedRound

from ..prover.chunked_round import F, M, N, chunk_circuit, round_updates
from .world import INITIAL_MODEL

D = 20  # three chunks of 8: the tree's fourth leaf is padding


@pytest.fixture(scope="module")
def proven(tmp_path_factory):
    """The round proven in chunks, and a copy of its folder without chunk 1's proof."""
    round_ = ChunkedRound(chunk_circuit(), D)
    folder = tmp_path_factory.mktemp("chunked") / "round"
    round_.prove(round_updates(D), folder)
    unproven = folder.parent / "unproven"
    shutil.copytree(folder, unproven)
    (proof,) = round_.staged_proofs(unproven)[0][1].rglob("proof.json")
    proof.unlink()
    return round_, folder, unproven


@pytest.fixture
def task(world, proven):
    """An optimistic task on the chunked round's verifier (approved with the world's accuracy verifier)."""
    round_, folder, _ = proven
    deployed = deploy_round_verifier(world.chain, round_, world.protocol.round_verifier.verifier)
    accuracy = world.protocol.accuracy_verifier.address
    world.send(
        world.chain.require_payer(), world.protocol.tasks, "approveVerifiers", deployed.contract.address, accuracy
    )
    task_id = world.start_task(n=N, f=F, m=M, verifiers=(deployed.contract.address, accuracy), verification=1)
    commitments = round_.commitments(folder)
    signatures = world.signatures(task_id, 1, commitments=commitments[:N])
    return task_id, signatures


def accounts(world, count):
    return [new_account(world.chain, 10 * ETHER) for _ in range(count)]


def play(world, claim, outcome, proposer, challenger, bundle, path):
    """The proposer answers each step from ``bundle``; the challenger picks children by ``path``."""
    nonce = world.protocol.rounds.functions.pending(claim.task_id).call()[2]
    for right in path:
        answer(world.protocol, proposer, claim, outcome, challenger.address, bundle)
        world.send(challenger, world.protocol.rounds, "choose", claim.task_id, right)
    receipt = answer(world.protocol, proposer, claim, outcome, challenger.address, bundle)
    assert dispute_of(world.protocol, claim.task_id, nonce, challenger.address).kind == Kind.NONE
    return receipt


def test_an_honest_chunked_round_survives_every_dispute(world, proven, task):
    round_, folder, _ = proven
    task_id, signatures = task
    bundle = Bundle(round_, folder)
    proposer, *watchers = accounts(world, 4)
    claim = bundle.claim(task_id, 1, INITIAL_MODEL, signatures)
    _, outcome, _ = propose(world.protocol, proposer, claim, folder.as_uri())
    bond = world.protocol.rounds.functions.CHALLENGER_BOND().call()
    challenge(world.protocol, watchers[0], task_id, Kind.COMBINE)
    answer(world.protocol, proposer, claim, outcome, watchers[0].address, bundle)
    challenge(world.protocol, watchers[1], task_id, Kind.TREE)
    leaf = play(world, claim, outcome, proposer, watchers[1], bundle, [False, True])  # chunk 1: a proof and paths
    assert leaf["gasUsed"] > 1_000_000, "a chunk proof was verified"
    challenge(world.protocol, watchers[2], task_id, Kind.TREE)
    play(world, claim, outcome, proposer, watchers[2], bundle, [True, True])  # the padding leaf: no chunk, no sum
    assert world.protocol.rounds.functions.creditOf(proposer.address).call() == 3 * bond
    world.travel_to(world.protocol.rounds.functions.pending(task_id).call()[3] + 1)
    finalize(world.protocol, proposer, claim, outcome)
    assert world.protocol.task(task_id).epochs_run == 1


def forged(tree: list[list[TreeNode]], k: int) -> list[list[TreeNode]]:
    """The tree a proposer builds when it adds 1 to chunk ``k``'s partial Gram: every sum above
    it moves too, so each split adds up; only the leaf's chunk proof can tell."""
    leaves = list(tree[0])
    leaves[k] = TreeNode(leaves[k].inner, [leaves[k].sum[0] + 1, *leaves[k].sum[1:]])
    return gram_tree(leaves)


def watch_until_void(world, watcher, claim, answer_split, best_leaf_answer):
    """Run the watcher step by step; the proposer answers each split with ``answer_split``; at
    the leaf its best answer must revert (``best_leaf_answer`` returns the revert's name), and the
    watcher times it out."""
    rounds = world.protocol.rounds
    nonce = rounds.functions.pending(claim.task_id).call()[2]
    watcher.step()  # judges the claim: challenges
    for _ in range(8):
        view = dispute_of(world.protocol, claim.task_id, nonce, watcher.address)
        if view.kind == Kind.NONE:
            break
        if view.proposer_to_move and view.level > 0:
            answer_split(view)
        elif view.proposer_to_move:
            assert best_leaf_answer(view) == "OptimisticRounds__AnswerMismatch"
            world.travel_to(view.deadline + 1)
        watcher.step()
    assert rounds.functions.pending(claim.task_id).call()[0] == State.VOID
    for client in world.clients:
        assert world.protocol.tasks.functions.record(claim.task_id, client.address).call() == [0, 0, 0, 0]


def test_a_forged_gram_sum_is_bisected_to_its_chunk_and_voided(world, proven, task):
    round_, folder, _ = proven
    task_id, signatures = task
    bundle = Bundle(round_, folder)
    proposer, watcher_account = accounts(world, 2)
    lies = forged(bundle.tree(), 2)
    true = bundle.claim(task_id, 1, INITIAL_MODEL, signatures)
    claim = Claim(**{**true.__dict__, "gram_root": lies[-1][0].digest})
    _, outcome, _ = propose(world.protocol, proposer, claim, folder.as_uri())
    lines = []
    watcher = Watcher(world.protocol, watcher_account, task_id, say=lines.append)

    def answer_split(view):
        left, right = lies[view.level - 1][2 * view.index], lies[view.level - 1][2 * view.index + 1]
        args = (claim.as_abi(), outcome.as_abi(), watcher.address, left.inner, left.sum, right.inner, right.sum)
        world.send(proposer, world.protocol.rounds, "answerSplit", *args)

    def leaf_answer(view):  # chunk 2's own proof: its partial Gram is not the forged leaf's
        proof, instances, words = bundle.chunk(view.index)
        args = (
            claim.as_abi(),
            outcome.as_abi(),
            watcher.address,
            proof,
            instances,
            words,
            bundle.chunk_paths(view.index),
        )
        return world.revert_name(proposer, world.protocol.rounds, "answerLeaf", *args)

    watch_until_void(world, watcher, claim, answer_split, leaf_answer)
    assert any("challenged (tree)" in line for line in lines), lines
    assert [line.split(": ")[1] for line in lines if "chose" in line] == [
        "chose right at level 2 node 0",
        "chose left at level 1 node 1",
    ], "the descent ends at chunk 2"


def test_a_chunk_never_proven_is_found_and_voided(world, proven, task):
    round_, folder, unproven = proven
    task_id, signatures = task
    full, published = Bundle(round_, folder), Bundle(round_, unproven)
    proposer, watcher_account = accounts(world, 2)
    # The claim is the true one (its tree computed without the proof), its bundle lacks chunk 1's proof.
    claim = Claim(
        **{**full.claim(task_id, 1, INITIAL_MODEL, signatures).__dict__, "bundle_digest": bundle_digest(unproven)}
    )
    _, outcome, _ = propose(world.protocol, proposer, claim, unproven.as_uri())
    lines = []
    watcher = Watcher(world.protocol, watcher_account, task_id, say=lines.append)
    tree = full.tree()

    def answer_split(view):
        left, right = tree[view.level - 1][2 * view.index], tree[view.level - 1][2 * view.index + 1]
        args = (claim.as_abi(), outcome.as_abi(), watcher.address, left.inner, left.sum, right.inner, right.sum)
        world.send(proposer, world.protocol.rounds, "answerSplit", *args)

    def leaf_answer(view):  # the bundle has no proof of chunk 1; chunk 0's is the best it has
        assert view.index == 1 and not list(round_.staged_proofs(unproven)[0][1].rglob("proof.json"))
        proof, instances, words = published.chunk(0)
        args = (claim.as_abi(), outcome.as_abi(), watcher.address, proof, instances, words, full.chunk_paths(1))
        return world.revert_name(proposer, world.protocol.rounds, "answerLeaf", *args)

    watch_until_void(world, watcher, claim, answer_split, leaf_answer)
    assert [line.split(": ")[1] for line in lines if "chose" in line] == [
        "chose left at level 2 node 0",
        "chose right at level 1 node 0",
    ], "the descent ends at chunk 1"
