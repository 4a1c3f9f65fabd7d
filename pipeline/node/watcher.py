"""A watcher of an optimistic task (``stakelearn watch``): it checks every round proposed to
OptimisticRounds against the bundle the proposer published, challenges a false or withheld one
within its window, and plays its disputes to the end.

:func:`judge` is the judgement alone, pure: a claim, and the bundle read from disk (or why there
is none), in; a :class:`Verdict` (the dispute to open, or none, and why) out. :class:`Watcher`
is the rest: it polls the chain (``step``), fetches and verifies bundles as ``stakelearn verify``
does (the folder's own files, then the task's deployed verifier, so the circuits are the
task's), sends the challenge, and after each move of the proposer sends its own: a child after
each split, ``timeout`` once the proposer's deadline has passed, or once its dispute outlived a
round another dispute voided (its bond back). One line per thing it does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from eth_utils import keccak

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.contracts.optimistic import (
    Bundle,
    Claim,
    Kind,
    Outcome,
    State,
    TreeNode,
    bundle_digest,
    challenge,
    choose_child,
    chunk_leaf,
    dispute_of,
    gram_tree,
)
from stakelearn.pipeline.contracts.round_on_chain import check_with_task_verifier
from stakelearn.prover.chunked import verify_chunk
from stakelearn.prover.rounds import open_round
from stakelearn.verifier_contracts.build import load_artifact

# A leaf the watcher cannot back (a chunk missing or not verifying): no preimage of its inner
# hash is known, so no revealed node ever matches it or its ancestors and the descent goes there.
UNBACKED = keccak(text="stakelearn: a chunk the bundle does not back")


@dataclass(frozen=True)
class Verdict:
    """What to do with a claim: open a dispute of ``kind`` (NONE: leave it alone), and why."""

    kind: Kind
    reason: str

    @property
    def holds(self) -> bool:
        return self.kind == Kind.NONE


def judge(
    claim: Claim,
    outcome: Outcome,
    bundle: Bundle | None,
    *,
    chunked: bool,
    defect: str | None = None,
    bad_chunks: frozenset[int] = frozenset(),
) -> Verdict:
    """The dispute a false claim calls for, or NONE for a true one.

    ``bundle`` is the folder the claim's URI names, None when there is none (``defect`` says
    why); with a bundle, ``defect`` says why it does not verify (``bad_chunks``: which chunk
    proofs are missing or invalid). A claim whose bundle is missing, is another folder (its
    digest is not the claim's) or does not verify is withheld: nobody can check it, and only the
    proposer's answer on chain can. Otherwise the claim is recomputed from the bundle and
    compared field by field. One-proof rounds have one dispute (ROUND); a chunked round's
    selection and scores are the combine proof's (COMBINE), its commitments and partial-sum tree
    are checked leaf by leaf (TREE)."""
    tree_or_round = Kind.TREE if chunked else Kind.ROUND
    combine_or_round = Kind.COMBINE if chunked else Kind.ROUND
    if bundle is None:
        return Verdict(tree_or_round, f"bundle withheld: {defect}")
    digest = bundle_digest(bundle.folder)
    if digest != claim.bundle_digest:
        return Verdict(
            tree_or_round,
            f"bundle withheld: {bundle.folder}'s digest 0x{digest.hex()} is not the claim's 0x{claim.bundle_digest.hex()}",
        )
    if defect is not None:
        # A chunk that does not verify is a leaf the proposer cannot answer; anything else is
        # the combine proof (or the one proof) it cannot give.
        kind = Kind.TREE if chunked and bad_chunks else combine_or_round
        return Verdict(kind, f"the bundle does not verify: {defect}")
    true = bundle.claim(claim.task_id, claim.epoch, claim.previous_model, [claim.signatures])
    n = bundle.n
    for slot in range(n + 1):
        if claim.commitments[64 * slot : 64 * (slot + 1)] != true.commitments[64 * slot : 64 * (slot + 1)]:
            whose = "the aggregate's" if slot == n else f"client {slot}'s"
            return Verdict(tree_or_round, f"{whose} commitment is not the one the bundle proves")
    if len(claim.commitments) != len(true.commitments):
        return Verdict(tree_or_round, f"{len(claim.commitments) // 64} commitments, the bundle proves {n + 1}")
    if claim.selected_mask != true.selected_mask:
        return Verdict(
            combine_or_round,
            f"it selects clients {_members(claim.selected_mask, n)}, the proof {_members(true.selected_mask, n)}",
        )
    if list(claim.scores) != list(true.scores):
        wrong = [i for i, (a, b) in enumerate(zip(claim.scores, true.scores)) if a != b] or list(range(n))
        return Verdict(
            combine_or_round,
            f"the scores of clients {wrong} are not the proven ones (it flags {_members(outcome.flagged_mask, n)})",
        )
    if claim.gram_root != true.gram_root:
        return Verdict(Kind.TREE, "the partial-sum tree's root is not the bundle's")
    return Verdict(Kind.NONE, f"selects clients {_members(claim.selected_mask, n)} with the proven scores")


def _members(mask: int, n: int) -> list[int]:
    return [i for i in range(n) if mask >> i & 1]


def bundle_folder(uri: str) -> Path | None:
    """The local folder a bundle URI names (a path, or file:///path); None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def open_bundle(uri: str, ceremony_srs: Path | None = None) -> tuple[Bundle | None, str | None]:
    """The bundle at ``uri``, or None and why it cannot be read."""
    folder = bundle_folder(uri)
    if folder is None:
        return None, f"{uri!r} is not a local path or file:// URI this watcher can read"
    if not folder.is_dir():
        return None, f"{folder} is not reachable"
    try:
        return Bundle(open_round(folder, ceremony_srs), folder), None
    except StakeLearnError as error:
        return None, str(error)


def bad_chunks(bundle: Bundle) -> frozenset[int]:
    """The chunks whose proof is missing or does not verify with the round's chunk circuit."""
    staged, _ = bundle.round_.staged_proofs(bundle.folder)
    bad = set()
    for k, folder in enumerate(staged):
        try:
            verify_chunk(bundle.round_.prepared, folder)
        except (StakeLearnError, OSError, ValueError, KeyError):
            bad.add(k)
    return frozenset(bad)


def steering_tree(leaves: list[TreeNode | None], t: int) -> list[list[TreeNode]]:
    """The partial-sum tree to steer a dispute by: ``leaves`` with an unbacked leaf for each
    None (a chunk missing or not verifying), so that :func:`choose_child` leads to one of them."""
    return gram_tree([TreeNode(UNBACKED, [0] * t) if leaf is None else leaf for leaf in leaves])


def true_tree(bundle: Bundle, bad: frozenset[int]) -> list[list[TreeNode]]:
    """The bundle's tree to steer by, its ``bad`` chunks unbacked."""
    leaves = []
    for k in range(bundle.chunk_count()):
        if k in bad:
            leaves.append(None)
        else:
            proof, instances, _ = bundle.chunk(k)
            leaves.append(chunk_leaf(proof, instances, bundle.n))
    return steering_tree(leaves, bundle.n * (bundle.n + 1) // 2)


@dataclass
class _Dispute:
    nonce: int
    epoch: int
    kind: Kind
    tree: list[list[TreeNode]] | None  # a tree dispute's true tree; None when the bundle is withheld
    since: int  # the block it was opened in: its events are read from there


class Watcher:
    """Watches one optimistic task of ``protocol`` with ``account`` (which pays the challenger
    bonds); :meth:`step` is one poll."""

    def __init__(
        self,
        protocol,
        account,
        task_id: int,
        say: Callable[[str], None] = print,
        ceremony_srs: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.protocol = protocol
        self.account = account
        self.task_id = task_id
        self.say = say
        self.ceremony_srs = ceremony_srs
        self.rng = rng or random.Random()
        self.rounds = protocol.rounds
        self.verifier = protocol.task_params(task_id).verifier
        verifier = protocol.chain.contract(self.verifier, load_artifact("RoundVerifier").abi)
        self.chunked = verifier.functions.chunks().call() != 0
        self.disputes: dict[int, _Dispute] = {}  # by the claim's nonce: this watcher's open disputes
        self._judged: set[int] = set()
        self._next_block = protocol.deployment_block

    @property
    def chain(self):
        return self.protocol.chain

    @property
    def address(self) -> str:
        return self.account.address

    def step(self) -> None:
        """Judge the claims proposed since the last step, then move in each open dispute."""
        latest = self.chain.w3.eth.block_number
        for event in self.chain.logs(self.rounds.events.RoundProposed, self._next_block, taskId=self.task_id):
            self._consider(event["args"])
        self._next_block = latest + 1  # later logs read twice are skipped by their nonce
        for dispute in list(self.disputes.values()):
            self._follow(dispute)

    def _pending(self) -> tuple[State, int, int]:
        state, _, nonce, deadline, _, _ = self.rounds.functions.pending(self.task_id).call()
        return State(state), nonce, deadline

    def _line(self, epoch: int, nonce: int, text: str) -> None:
        self.say(f"task {self.task_id} epoch {epoch} (claim {nonce}): {text}")

    def _consider(self, args) -> None:
        nonce = args["nonce"]
        if nonce in self._judged:
            return
        self._judged.add(nonce)
        claim, outcome = Claim.from_abi(args["claim"]), Outcome.from_abi(args["outcome"])
        state, current, deadline = self._pending()
        if state != State.PENDING or current != nonce:
            return  # history: final or void before this watcher looked
        if self.chain.latest_timestamp() >= deadline:
            self._line(claim.epoch, nonce, "its challenge window closed before it was checked")
            return
        bundle, defect = open_bundle(args["bundleUri"], self.ceremony_srs)
        bad: frozenset[int] = frozenset()
        published = bundle is not None and bundle_digest(bundle.folder) == claim.bundle_digest
        if published:
            defect = self._defect(bundle)
            if defect is not None and self.chunked:
                bad = bad_chunks(bundle)
        verdict = judge(claim, outcome, bundle, chunked=self.chunked, defect=defect, bad_chunks=bad)
        if verdict.holds:
            self._line(claim.epoch, nonce, f"checked ok: {verdict.reason}")
            return
        tree = true_tree(bundle, bad) if verdict.kind == Kind.TREE and published else None
        bond, balance = self.rounds.functions.CHALLENGER_BOND().call(), self.chain.w3.eth.get_balance(self.address)
        if balance <= bond:  # a node refuses the transaction outright: say why instead
            self._line(claim.epoch, nonce, f"cannot challenge ({verdict.reason}): {balance} wei, the bond is {bond}")
            return
        try:
            receipt = challenge(self.protocol, self.account, self.task_id, verdict.kind)
        except StakeLearnError as error:
            self._line(claim.epoch, nonce, f"could not challenge ({verdict.reason}): {error}")
            return
        self.disputes[nonce] = _Dispute(nonce, claim.epoch, verdict.kind, tree, receipt["blockNumber"])
        self._line(claim.epoch, nonce, f"challenged ({verdict.kind.name.lower()}): {verdict.reason}")

    def _defect(self, bundle: Bundle) -> str | None:
        """Why the bundle does not verify as ``stakelearn verify --verifier`` checks it, or None."""
        try:
            bundle.round_.verify(bundle.folder)
            check_with_task_verifier(self.chain, self.verifier, bundle.folder, self.ceremony_srs)
        except (StakeLearnError, OSError, ValueError) as error:
            return str(error)
        return None

    def _follow(self, d: _Dispute) -> None:
        view = dispute_of(self.protocol, self.task_id, d.nonce, self.address)
        state, current, _ = self._pending()
        if view.kind == Kind.NONE:  # closed: by this watcher's timeout, or the proposer's answer or timeout
            del self.disputes[d.nonce]
            closed = self.chain.logs(
                self.rounds.events.DisputeClosed,
                d.since,
                taskId=self.task_id,
                nonce=d.nonce,
                challenger=self.address,
            )
            won = bool(closed) and not closed[-1]["args"]["proposerWon"]
            self._line(d.epoch, d.nonce, "proposer timed out: round void" if won else "dispute lost")
            return
        if state != State.PENDING or current != d.nonce:
            # Another dispute voided the round first: this one was right too, its bond comes back.
            self._timeout(d, "round voided by another dispute: bond back")
            return
        if view.proposer_to_move:
            if self.chain.now() > view.deadline:
                self._timeout(d, "proposer timed out: round void")
            return
        split = [
            e["args"]
            for e in self.chain.logs(
                self.rounds.events.NodeSplit, d.since, taskId=self.task_id, challenger=self.address
            )
            if (e["args"]["level"], e["args"]["index"]) == (view.level, view.index)
        ][-1]
        if d.tree is None:  # no tree to go by: either child may hide the lie
            right = self.rng.random() < 0.5
        else:
            right = choose_child(d.tree, view.level, view.index, split["left"], split["right"])
        self.chain.execute(self.account, self.rounds, "choose", self.task_id, right)
        self._line(d.epoch, d.nonce, f"chose {'right' if right else 'left'} at level {view.level} node {view.index}")

    def _timeout(self, d: _Dispute, text: str) -> None:
        self.chain.execute(self.account, self.rounds, "timeout", self.task_id, d.nonce, self.address)
        del self.disputes[d.nonce]
        self._line(d.epoch, d.nonce, text)
