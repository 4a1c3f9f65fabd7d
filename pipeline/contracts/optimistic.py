"""Rounds verified on chain only when challenged (OptimisticRounds): the claim a round folder
makes, the partial-sum tree of a chunked round, and each party's move.

The proposer posts a :class:`Claim` with a bond and publishes its round folder (the bundle);
a challenger opens a dispute of a :class:`Kind`; the proposer answers it from the folder
(:func:`answer`), the challenger steers a tree dispute toward what the folder cannot back
(:func:`choose_child`); whoever waits out the other side's deadline calls ``timeout``; anyone
finalizes a round whose window is over. The math (the tree, its digests) is pure; only the
functions taking a ``Protocol`` send transactions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak

from stakelearn.circuits.chunk import triangle_size
from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.contracts.types import _AbiStruct
from stakelearn.prover import chunked
from stakelearn.prover.evm import verify_arguments
from stakelearn.prover.rounds import Round

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617


class Kind(IntEnum):
    """IOptimisticRounds.Kind: what a dispute makes the proposer prove."""

    NONE = 0
    ROUND = 1  # one-proof round: the round proof
    COMBINE = 2  # chunked: the combine proof over the claimed Gram sum
    TREE = 3  # chunked: bisection over the partial-sum tree, then one chunk proof


class State(IntEnum):
    """IOptimisticRounds.State."""

    NONE = 0
    PENDING = 1
    FINAL = 2
    VOID = 3


@dataclass(frozen=True)
class Claim(_AbiStruct):
    """IOptimisticRounds.Claim: what a proposer says of one epoch."""

    task_id: int
    epoch: int
    previous_model: bytes
    commitments: bytes  # n updates' then the aggregate's, 64 bytes each
    signatures: bytes  # n, 65 bytes each; all-zero: absent
    selected_mask: int
    scores: list  # the n raw Krum scores
    gram_root: bytes  # a chunked round's partial-sum tree root; zero otherwise
    bundle_digest: bytes

    def as_abi(self) -> tuple:
        return (
            self.task_id,
            self.epoch,
            self.previous_model,
            self.commitments,
            self.signatures,
            self.selected_mask,
            list(self.scores),
            self.gram_root,
            self.bundle_digest,
        )

    @property
    def digest(self) -> bytes:
        """keccak256(abi.encode(claim)): what ``finalize`` takes in place of the claim."""
        return keccak(encode([CLAIM_TYPE], [self.as_abi()]))


CLAIM_TYPE = "(uint256,uint256,bytes32,bytes,bytes,uint256,uint256[],bytes32,bytes32)"


@dataclass(frozen=True)
class Outcome(_AbiStruct):
    """IOptimisticRounds.Outcome: what the protocol derived from a claim when it was proposed,
    and what ``finalize`` records."""

    epoch: int
    selected_mask: int
    absent_mask: int
    flagged_mask: int
    global_model: bytes
    state_root: bytes


# --- the bundle and the partial-sum tree (pure) ---------------------------------------------


def bundle_digest(folder: Path) -> bytes:
    """keccak256 of the bundle's manifest: every file of the round folder by its relative path
    and sha256, sorted. A watcher compares it with the claim's before trusting the folder."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    manifest = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    return keccak(json.dumps(manifest, sort_keys=True).encode())


def sum_hash(values: list[int]) -> bytes:
    """keccak256(abi.encodePacked(uint256[])): how the contract hashes a partial Gram sum."""
    return keccak(b"".join(int(v).to_bytes(32, "big") for v in values))


def node_digest(inner: bytes, values: list[int]) -> bytes:
    return keccak(inner + sum_hash(values))


@dataclass(frozen=True)
class TreeNode:
    inner: bytes  # a leaf: keccak256 of its chunk's n + 1 commitments (zero: padding); else of its children's digests
    sum: list  # the partial Gram sum of its leaves, in the field

    @property
    def digest(self) -> bytes:
        return node_digest(self.inner, self.sum)


def gram_tree(leaves: list[TreeNode]) -> list[list[TreeNode]]:
    """The partial-sum tree over ``leaves`` (padded to a power of two with empty leaves), level
    by level from the leaves up; the root is ``tree[-1][0]``."""
    width = 1
    while width < len(leaves):
        width *= 2
    t = len(leaves[0].sum)
    level = list(leaves) + [TreeNode(bytes(32), [0] * t)] * (width - len(leaves))
    tree = [level]
    while len(level) > 1:
        level = [
            TreeNode(
                keccak(left.digest + right.digest), [(a + b) % FIELD for a, b in zip(left.sum, right.sum, strict=True)]
            )
            for left, right in zip(level[0::2], level[1::2], strict=True)
        ]
        tree.append(level)
    return tree


def chunk_leaf(proof: bytes, instances: list[int], n: int) -> TreeNode:
    """A chunk proof's leaf: its n + 1 commitments and its partial Gram."""
    return TreeNode(keccak(proof[: 64 * (n + 1)]), [int(v) for v in instances[: triangle_size(n)]])


@dataclass(frozen=True)
class Bundle:
    """A round folder read as the disputes need it: the submitted proof and, for a chunked
    round, each chunk proof with the tree over them."""

    round_: Round
    folder: Path

    @property
    def n(self) -> int:
        return self.round_.params.n

    @property
    def chunked(self) -> bool:
        return bool(self.round_.staged_proofs(self.folder)[0])

    def submitted(self) -> tuple[bytes, list[int], list[bytes]]:
        proof_json, vka = self.round_.submitted_proof(self.folder)
        return verify_arguments(proof_json, vka)

    def chunk(self, k: int) -> tuple[bytes, list[int], list[bytes]]:
        staged, vka = self.round_.staged_proofs(self.folder)
        return verify_arguments(staged[k] / "proof.json", vka)

    def chunk_count(self) -> int:
        return len(self.round_.staged_proofs(self.folder)[0])

    def tree(self) -> list[list[TreeNode]]:
        leaves = []
        for k in range(self.chunk_count()):
            proof, instances, _ = self.chunk(k)
            leaves.append(chunk_leaf(proof, instances, self.n))
        return gram_tree(leaves)

    def claim(self, task_id: int, epoch: int, previous_model: bytes, signatures: list[bytes]) -> Claim:
        """The claim of this folder's round for (task, epoch), its slots signed by ``signatures``."""
        _, instances, _ = self.submitted()
        n, at = self.n, self.round_.mask_offset
        mask = sum(int(bit) << i for i, bit in enumerate(instances[at : at + n]))
        return Claim(
            task_id,
            epoch,
            previous_model,
            b"".join(self.round_.commitments(self.folder)),
            b"".join(signatures),
            mask,
            [int(v) for v in instances[at - n : at]],
            self.tree()[-1][0].digest if self.chunked else bytes(32),
            bundle_digest(self.folder),
        )

    def chunk_paths(self, k: int) -> list[bytes]:
        """Each slot's Merkle path from its chunk-k commitment to the root it signed, slot after slot."""
        proof_paths = []
        chunks = [self.chunk(j)[0] for j in range(self.chunk_count())]
        for slot in range(self.n + 1):
            commitments = [proof[64 * slot : 64 * (slot + 1)] for proof in chunks]
            proof_paths.extend(chunked.chunk_path(commitments, k))
        return proof_paths


# --- the parties' moves (transactions) -------------------------------------------------------


def propose(protocol, account, claim: Claim, bundle_uri: str) -> tuple[int, Outcome, dict]:
    """Post ``claim`` with the task's proposer bond; its nonce, the protocol's outcome, the receipt."""
    rounds = protocol.rounds
    bond = rounds.functions.proposerBond(claim.task_id).call()
    receipt = protocol.chain.execute(account, rounds, "propose", claim.as_abi(), bundle_uri, value=bond)
    (event,) = rounds.events.RoundProposed().process_receipt(receipt)
    return event["args"]["nonce"], Outcome.from_abi(event["args"]["outcome"]), receipt


def finalize(protocol, account, claim: Claim, outcome: Outcome) -> dict:
    """Record a pending round whose window is over and whose disputes are closed."""
    return protocol.chain.execute(account, protocol.rounds, "finalize", claim.task_id, claim.digest, outcome.as_abi())


def challenge(protocol, account, task_id: int, kind: Kind) -> dict:
    rounds = protocol.rounds
    bond = rounds.functions.CHALLENGER_BOND().call()
    return protocol.chain.execute(account, rounds, "challenge", task_id, int(kind), value=bond)


@dataclass(frozen=True)
class DisputeView:
    kind: Kind
    proposer_to_move: bool
    deadline: int
    level: int
    index: int
    node: bytes


def dispute_of(protocol, task_id: int, nonce: int, challenger: str) -> DisputeView:
    kind, to_move, deadline, level, index, node = protocol.rounds.functions.dispute(task_id, nonce, challenger).call()
    return DisputeView(Kind(kind), to_move, deadline, level, index, node)


def answer(protocol, account, claim: Claim, outcome: Outcome, challenger: str, bundle: Bundle) -> dict:
    """The proposer's next move in ``challenger``'s dispute, from its bundle."""
    rounds = protocol.rounds
    nonce = rounds.functions.pending(claim.task_id).call()[2]
    view = dispute_of(protocol, claim.task_id, nonce, challenger)
    if not view.proposer_to_move:
        raise StakeLearnError(f"the dispute of {challenger} waits for the challenger, not for an answer")
    execute = protocol.chain.execute
    if view.kind == Kind.ROUND:
        proof, instances, words = bundle.submitted()
        args = (claim.as_abi(), outcome.as_abi(), challenger, proof, instances, words)
        return execute(account, rounds, "answerRound", *args)
    tree = bundle.tree()
    if view.kind == Kind.COMBINE:
        proof, instances, words = bundle.submitted()
        args = (claim.as_abi(), outcome.as_abi(), challenger, tree[-1][0].inner, proof, instances, words)
        return execute(account, rounds, "answerCombine", *args)
    if view.level > 0:
        left, right = tree[view.level - 1][2 * view.index], tree[view.level - 1][2 * view.index + 1]
        args = (claim.as_abi(), outcome.as_abi(), challenger, left.inner, left.sum, right.inner, right.sum)
        return execute(account, rounds, "answerSplit", *args)
    if view.index >= bundle.chunk_count():
        return execute(account, rounds, "answerLeaf", claim.as_abi(), outcome.as_abi(), challenger, b"", [], [], [])
    proof, instances, words = bundle.chunk(view.index)
    paths = bundle.chunk_paths(view.index)
    args = (claim.as_abi(), outcome.as_abi(), challenger, proof, instances, words, paths)
    return execute(account, rounds, "answerLeaf", *args)


def choose_child(true_tree: list[list[TreeNode]] | None, level: int, index: int, left: bytes, right: bytes) -> bool:
    """The challenger's pick after a split at (``level``, ``index``): the child whose revealed
    digest is not the bundle's own (right if the left one matches), or, with no bundle to go by,
    the left one."""
    if true_tree is None:
        return False
    return true_tree[level - 1][2 * index].digest == left and true_tree[level - 1][2 * index + 1].digest != right
