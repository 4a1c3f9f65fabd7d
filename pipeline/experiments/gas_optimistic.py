"""`stakelearn gas --verification optimistic`: what a round costs when it is proven only if
challenged (OptimisticRounds), one line per figure.

At each n it measures, on the embedded EVM:
- the epoch, a claim and its finalization, for the proven round of ``gas.prove_sample`` (one
  proof, d = 16) and for a chunked task of K = 782 chunks (d = 100,000 at 128 coordinates per
  chunk, the round docs/chunked-rounds.md proved and verified eagerly for 1.78 G gas). A claim carries commitments, signatures and scores, never a proof, so the two cost
  the same: the gas does not grow with d;
- each dispute step: the challenge, the answer with the round proof, and one level of a tree
  dispute (the proposer's split, the challenger's choice) over the K-chunk task's partial-sum
  tree, of which a dispute takes log2 K; its last step, one chunk proof, costs what verifying a
  chunk proof costs (``stakelearn verify --evm`` on a chunked round);
- the bonds against the gas they are there to cover, at a stated gas price.
The chunked task's verifier pins digests no proof is made for: claiming and splitting check
signatures and sums, not proofs, so none is needed to measure them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from eth_utils import keccak

from stakelearn.circuits.chunk import triangle_size
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.optimistic import (
    FIELD,
    Bundle,
    Claim,
    Kind,
    TreeNode,
    answer,
    challenge,
    finalize,
    gram_tree,
    propose,
)
from stakelearn.pipeline.contracts.protocol import Protocol, new_account
from stakelearn.pipeline.contracts.types import ETHER, Verification
from stakelearn.pipeline.experiments import gas
from stakelearn.prover.rounds import OneProofRound
from stakelearn.verifier_contracts.build import load_artifact

CHUNKS = 782  # d = 100,000 in chunks of 128, as docs/chunked-rounds.md proved it
GWEI = 10**9
GAS_PRICE_GWEI = 30  # what the bonds are sized at (types.OptimisticTerms)

EPOCH = "epoch (claim + finalize, as most are)"
FIRST_EPOCH = "epoch (claim + finalize, first epoch)"
CHUNKED_EPOCH = f"epoch of a {CHUNKS}-chunk task (d = 100,000)"


def _start(protocol: Protocol, proven: gas.ProvenRound, clients: list, verifier: str | None = None) -> int:
    """An optimistic task of ``proven``'s shape (or on another approved round ``verifier``), started."""
    requester = new_account(protocol.chain, 10 * ETHER)
    params = replace(gas.task_params(protocol, proven.circuit), verification=Verification.OPTIMISTIC)
    if verifier is not None:
        params = replace(params, verifier=verifier)
    protocol.chain.execute(
        requester, protocol.tasks, "createTask", params.as_abi(), value=protocol.config.base_fee_wei + params.escrow
    )
    task_id = protocol.task_count()
    for client in clients:
        protocol.chain.execute(client, protocol.tasks, "enroll", task_id)
    return task_id


def _signatures(protocol: Protocol, clients: list, task_id: int, epoch: int, commitments: list[bytes]) -> list[bytes]:
    return [protocol.sign_update(c, task_id, epoch, cm) for c, cm in zip(clients, commitments, strict=False)]


def _claim_epochs(protocol: Protocol, proposer, claims) -> list[int]:
    """Claim and finalize each of ``claims`` (a function of the epoch and previous model) in turn:
    each epoch's gas."""
    gas_per_epoch, previous = [], gas.INITIAL
    for epoch in (1, 2):
        claim = claims(epoch, previous)
        _, outcome, proposed = propose(protocol, proposer, claim, "file:///bundle")
        protocol.chain.travel(protocol.config.optimistic.challenge_seconds + 1)
        recorded = finalize(protocol, proposer, claim, outcome)
        gas_per_epoch.append(proposed["gasUsed"] + recorded["gasUsed"])
        previous = outcome.global_model
    return gas_per_epoch


def _chunked_verifier(protocol: Protocol, proven: gas.ProvenRound) -> str:
    """A ChunkedRoundVerifier of ``proven``'s shape and CHUNKS chunks, approved with the deployment's accuracy verifier."""
    chain, c = protocol.chain, proven.circuit
    pins = (keccak(text="chunk circuit"), keccak(text="combine circuit"), c.n, c.f, c.m, CHUNKS, keccak(text="absent"))
    address, _ = chain.deploy(load_artifact("ChunkedRoundVerifier"), protocol.round_verifier.verifier, *pins)
    chain.execute(
        chain.require_payer(), protocol.tasks, "approveVerifiers", address, protocol.accuracy_verifier.address
    )
    return address


def _synthetic_tree(n: int, seed: int) -> list[list[TreeNode]]:
    """A consistent partial-sum tree of CHUNKS leaves (what a split checks is the sums, not the proofs)."""
    rng = random.Random(seed)
    t = triangle_size(n)
    leaves = [TreeNode(keccak(rng.randbytes(32)), [rng.randrange(FIELD) for _ in range(t)]) for _ in range(CHUNKS)]
    return gram_tree(leaves)


def measure(n: int, workdir: Path) -> dict[str, int]:
    """The optimistic figures at ``n`` clients."""
    proven = gas.prove_sample(n, workdir)
    chain = Chain.embedded()
    protocol = gas.deploy(chain, proven)
    clients = [new_account(chain, 3 * ETHER) for _ in range(n)]
    for client in clients:
        chain.execute(client, protocol.registry, "stake", value=ETHER)
    proposer, watcher = new_account(chain, 10 * ETHER), new_account(chain, 10 * ETHER)
    bundle = Bundle(OneProofRound(proven.prepared), proven.folder)
    figures = {}

    task_id = _start(protocol, proven, clients)
    epochs = _claim_epochs(
        protocol,
        proposer,
        lambda e, p: bundle.claim(task_id, e, p, _signatures(protocol, clients, task_id, e, proven.commitments)),
    )
    figures[FIRST_EPOCH], figures[EPOCH] = epochs

    # A frivolous challenge, answered with the round proof.
    task_id = _start(protocol, proven, clients)
    claim = bundle.claim(task_id, 1, gas.INITIAL, _signatures(protocol, clients, task_id, 1, proven.commitments))
    _, outcome, _ = propose(protocol, proposer, claim, "file:///bundle")
    figures["challenge"] = challenge(protocol, watcher, task_id, Kind.ROUND)["gasUsed"]
    figures["answerRound (the round proof)"] = answer(protocol, proposer, claim, outcome, watcher.address, bundle)[
        "gasUsed"
    ]

    # A chunked task: its claims, and one level of a tree dispute.
    verifier = _chunked_verifier(protocol, proven)
    tree = _synthetic_tree(n, seed=n)
    task_id = _start(protocol, proven, clients, verifier)

    def chunked_claim(epoch: int, previous: bytes) -> Claim:
        signatures = _signatures(protocol, clients, task_id, epoch, proven.commitments)
        base = bundle.claim(task_id, epoch, previous, signatures)
        return replace(base, gram_root=tree[-1][0].digest)

    figures[CHUNKED_EPOCH] = _claim_epochs(protocol, proposer, chunked_claim)[1]
    claim = chunked_claim(3, protocol.task(task_id).global_model)
    _, outcome, _ = propose(protocol, proposer, claim, "file:///bundle")
    challenge(protocol, watcher, task_id, Kind.TREE)
    left, right = tree[-2][0], tree[-2][1]
    split = (claim.as_abi(), outcome.as_abi(), watcher.address, left.inner, left.sum, right.inner, right.sum)
    figures["answerSplit (one tree level)"] = chain.execute(proposer, protocol.rounds, "answerSplit", *split)["gasUsed"]
    figures["choose (one tree level)"] = chain.execute(watcher, protocol.rounds, "choose", task_id, True)["gasUsed"]
    return figures


def optimistic_lines(results: dict[int, dict[str, int]], terms) -> list[str]:
    """One line per figure, then the bonds against what they cover."""
    depth = (CHUNKS - 1).bit_length()
    lines = []
    for n, figures in results.items():
        lines += [f"n={n} {name}: {value:,} gas" for name, value in figures.items()]
        tree = depth * (figures["answerSplit (one tree level)"] + figures["choose (one tree level)"])
        lines.append(
            f"n={n} a tree dispute's {depth} levels ({CHUNKS} chunks), before its one chunk proof: {tree:,} gas"
        )
    worst = max(f["answerRound (the round proof)"] for f in results.values())
    covered = terms.challenger_bond_wei // (GAS_PRICE_GWEI * GWEI)
    lines.append(
        f"challenger bond {terms.challenger_bond_wei / ETHER:g} ETH covers {covered:,} gas at {GAS_PRICE_GWEI} gwei "
        f"(the round proof's answer: {worst:,} gas)"
    )
    lines.append(
        f"proposer bond {terms.proposer_bond_wei / ETHER:g} ETH (or the task's fee per epoch, the larger): half to a "
        f"challenger that wins, half burnt; it covers {terms.proposer_bond_wei // 2 // (GAS_PRICE_GWEI * GWEI):,} gas "
        f"of the challenger's at {GAS_PRICE_GWEI} gwei"
    )
    return lines
