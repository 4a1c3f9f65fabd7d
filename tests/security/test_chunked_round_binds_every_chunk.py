"""A round proven in chunks lands on chain only as the clients signed it: every chunk proof over
exactly their chunk commitments, in order, all of them, under one mask, and a combine proof over
the sum of exactly those partial Gram matrices. Real proofs (5 clients, 20 coordinates in 3
chunks of 8) on the embedded chain, through the protocol's submitRound. Each chunk and the combine
proof are also checked alone (checkChunk, checkCombine), as an optimistic dispute will: one chunk
against the signed roots with its Merkle path."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from stakelearn.circuits.chunk import chunked_gram, split_chunks, split_vector, tag_slices
from stakelearn.circuits.krum import krum_round
from stakelearn.models.quantize import FIELD_MODULUS
from stakelearn.pipeline.contracts.chunked import (
    ChunkCall,
    Progress,
    chunk_calls,
    progress_after,
    round_session,
    stage_chunks,
)
from stakelearn.pipeline.contracts.protocol import new_account, round_args
from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.prover import steps
from stakelearn.prover.chunked import (
    ChunkCircuit,
    CombineCircuit,
    absent_slot_commitment,
    chunk_path,
    chunk_root,
    path_root,
    prove_chunk,
    prove_combine,
    update_chunk_commitments,
)
from stakelearn.prover.circuit import prepare
from stakelearn.prover.evm import verify_arguments, vka_words
from stakelearn.prover.rounds import ChunkedRound

from ..verifier_contracts.test_gas_snapshot import CHUNKED, check_gas

N, F, M, D, C, MAX_INT = 6, 1, 3, 20, 8, 128  # six clients: a round may leave one absent
CHUNKS = 3


@pytest.fixture(scope="module")
def circuits():
    return (
        prepare(ChunkCircuit(N, F, M, C, MAX_INT, num_inner_cols=4)),
        prepare(CombineCircuit(N, F, M, D, MAX_INT, num_inner_cols=4)),
    )


def updates_of(seed: int) -> np.ndarray:
    """Similar updates and one far away (client 4)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-40, 41, size=D)
    x = base + rng.integers(-6, 7, size=(N, D))
    x[4] = -2 * base
    return np.clip(x, -MAX_INT, MAX_INT)


class ProvenRound:
    """A chunked round proven into ``folder``: chunk-k/ and combine/ proof folders."""

    def __init__(self, circuits, updates, folder, absent=None, gram=None):
        chunk, combine = circuits
        self.updates, self.absent = updates, absent
        self.reference = krum_round(updates, combine.circuit.params, absent, combine.circuit.absent_distance)
        mask = self.reference.mask.astype(int)
        parts = zip(split_chunks(updates, C), split_vector(self.reference.total, C))
        self.chunk_folders = [folder / f"chunk-{k}" for k in range(CHUNKS)]
        self.chunks = [
            prove_chunk(chunk, tag_slices(slices, absent), part, mask, path)
            for (slices, part), path in zip(parts, self.chunk_folders)
        ]
        self.combine_folder = folder / "combine"
        gram = chunked_gram(updates, C) if gram is None else gram
        self.combined = prove_combine(combine, gram, self.combine_folder, absent)
        self.calls = chunk_calls(self.chunk_folders, chunk.vka)

    def commitments(self) -> list[bytes]:
        """What the round submits: each client's chunk root, then the aggregate's."""
        return [chunk_root(self.slot_chunks(i)) for i in range(N + 1)]

    def slot_chunks(self, slot: int) -> list[bytes]:
        """Slot ``slot``'s chunk commitments (slot N: the aggregate's), as the chunk proofs carry them."""
        return [bytes.fromhex(c.commitments[slot]) for c in self.chunks]


@pytest.fixture(scope="module")
def rounds(circuits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunked-chain")
    # two epochs whose rounds select the same clients, so that their chunk proofs differ only in
    # which commitments they carry (seeds 5 and 7 both select 0, 1 and 5)
    first = ProvenRound(circuits, updates_of(5), folder / "epoch-1")
    second = ProvenRound(circuits, updates_of(7), folder / "epoch-2")
    # A valid combine proof over a forged Gram matrix: the outlier's norm made small.
    forged = chunked_gram(updates_of(7), C)
    forged[4, 4] = forged[0, 0]
    forged_combine = ProvenRound.__new__(ProvenRound)
    forged_combine.combine_folder = folder / "forged" / "combine"
    forged_combine.combined = prove_combine(circuits[1], forged, forged_combine.combine_folder)
    absent = np.arange(N) == 3
    x = updates_of(3)
    x[absent] = 0
    with_absent = ProvenRound(circuits, x, folder / "absent", absent=absent)
    return first, second, forged_combine, with_absent


@dataclass
class Deployment:
    """The world's protocol with a ChunkedRoundVerifier approved beside its accuracy verifier,
    a started task that uses it, and an aggregator's account."""

    world: object
    verifier: object
    task_id: int
    aggregator: object
    chunk_vka: Path
    combine_vka: Path

    def stage(self, calls, session=b"\x01" * 32, per_transaction=2):
        chain = self.world.chain
        return stage_chunks(chain, self.aggregator, self.verifier, session, calls, self.chunk_vka, per_transaction)

    def stage_from(self, progress, calls, session=b"\x01" * 32):
        """One stageChunks transaction of ``calls`` from ``progress``, whatever the verifier's chunk count."""
        args = self.stage_call(session, progress, calls)
        return self.world.chain.execute(self.aggregator, self.verifier, "stageChunks", *args)

    def stage_call(self, session, progress, calls):
        """stageChunks' arguments for ``calls`` from ``progress``."""
        return (session, progress.as_abi(), [(c.proof, c.instances) for c in calls], vka_words(self.chunk_vka))

    def submit(self, epoch, proven, combine_folder=None, signatures=None):
        """submitRound (anyone may send it): the receipt, or the custom error's name if it would revert."""
        world, commitments = self.world, proven.commitments()
        if signatures is None:
            signatures = world.signatures(self.task_id, epoch, commitments)
        previous = world.protocol.task(self.task_id).global_model
        proof = (combine_folder or proven.combine_folder) / steps.PROOF
        args = round_args(self.task_id, epoch, previous, commitments, signatures, proof, self.combine_vka)
        tasks, sender = world.protocol.tasks, world.clients[0]
        return world.chain.revert_name(sender, tasks, "submitRound", args) or world.send(
            sender, tasks, "submitRound", args
        )


@pytest.fixture
def deployment(absence_world, circuits):
    world, (chunk, combine) = absence_world, circuits
    verifier = deploy_round_verifier(
        world.chain, ChunkedRound(chunk, D, combine=combine), world.protocol.round_verifier.verifier
    ).contract
    accuracy = world.protocol.accuracy_verifier.address
    world.chain.execute(world.chain.payer, world.protocol.tasks, "approveVerifiers", verifier.address, accuracy)
    task_id = world.start_task(verifiers=(verifier.address, accuracy))
    return Deployment(world, verifier, task_id, new_account(world.chain, 10 * ETHER), chunk.vka, combine.vka)


def test_a_chunked_round_lands_and_flags_the_outlier(deployment, rounds):
    first = rounds[0]
    gas = deployment.stage(first.calls, round_session(deployment.task_id, 1))
    assert len(gas) == 2  # 3 chunks, 2 per transaction
    receipt = deployment.submit(1, first)
    assert not isinstance(receipt, str), receipt
    check_gas(
        {
            f"{CHUNKED}stageChunks (n=6, chunks 0 and 1 of 3)": gas[0],
            f"{CHUNKED}stageChunks (n=6, chunk 2 of 3: closes the roots)": gas[1],
            f"{CHUNKED}submitRound (n=6, the combine proof)": receipt["gasUsed"],
        }
    )
    world = deployment.world
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["selectedMask"] == sum(1 << int(i) for i in np.flatnonzero(first.reference.mask))
    assert event["args"]["flaggedMask"] >> 4 & 1  # the far-away client
    assert world.protocol.task(deployment.task_id).global_model == keccak(first.commitments()[-1])


def test_clients_sign_the_root_of_their_own_chunk_commitments(rounds, circuits):
    first = rounds[0]
    for slot in range(N):
        own = update_chunk_commitments(first.updates[slot], slot, circuits[0])
        assert chunk_root(own) == first.commitments()[slot]


def test_the_off_chain_progress_is_the_contracts(deployment, rounds):
    d, session, progress = deployment, b"\x02" * 32, Progress.empty(N, CHUNKS)
    for call in rounds[0].calls:
        d.stage_from(progress, [call], session)
        progress = progress_after(progress, call)
        assert d.verifier.functions.progressHash(d.aggregator.address, session).call() == progress.digest


def test_a_killed_stager_resumes_after_the_recorded_chunks(deployment, rounds):
    d, session, calls = deployment, round_session(deployment.task_id, 1), rounds[0].calls
    d.stage_from(Progress.empty(N, CHUNKS), calls[:1], session)
    assert len(d.stage(calls, session, per_transaction=5)) == 1  # chunks 1 and 2 only, one transaction
    assert not isinstance(d.submit(1, rounds[0]), str)


def test_a_missing_chunk_is_rejected(deployment, rounds):
    deployment.stage_from(Progress.empty(N, CHUNKS), rounds[0].calls[:2])
    assert deployment.submit(1, rounds[0]) == "ChunkedRoundVerifier__NotStaged"


def test_swapped_chunks_are_rejected(deployment, rounds):
    calls = rounds[0].calls
    deployment.stage([calls[1], calls[0], calls[2]])
    assert deployment.submit(1, rounds[0]) == "ChunkedRoundVerifier__NotStaged"


def test_a_chunk_from_another_epoch_is_rejected(deployment, rounds):
    first, second = rounds[0], rounds[1]
    deployment.stage(first.calls)
    assert not isinstance(deployment.submit(1, first), str)
    deployment.stage([second.calls[0], first.calls[1], second.calls[2]])  # chunk 1 of epoch 1's round
    assert deployment.submit(2, second) == "ChunkedRoundVerifier__NotStaged"
    deployment.stage(second.calls)
    assert not isinstance(deployment.submit(2, second), str)


def test_a_combine_proof_over_another_gram_matrix_is_rejected(deployment, rounds):
    deployment.stage(rounds[1].calls)
    forged = rounds[2].combine_folder
    assert deployment.submit(1, rounds[1], combine_folder=forged) == "ChunkedRoundVerifier__NotStaged"


def test_a_tampered_chunk_proof_or_partial_gram_is_rejected(deployment, rounds):
    d, call = deployment, rounds[0].calls[0]
    broken = bytearray(call.proof)
    broken[64 * (N + 2) + 5] ^= 1  # past the commitments: the proof itself
    gram = list(call.instances)
    gram[0] += 1  # client 0's partial squared norm
    for tampered in (ChunkCall(bytes(broken), call.instances), ChunkCall(call.proof, gram)):
        args = d.stage_call(b"\x03" * 32, Progress.empty(N, CHUNKS), [tampered])
        assert d.world.chain.revert_name(d.aggregator, d.verifier, "stageChunks", *args) == (
            "ChunkedRoundVerifier__ChunkRejected"
        )


def test_nobody_can_continue_another_stagers_session(deployment, rounds):
    d, session, calls = deployment, b"\x04" * 32, rounds[0].calls
    d.stage_from(Progress.empty(N, CHUNKS), calls[:1], session)
    outsider = new_account(d.world.chain, ETHER)
    args = d.stage_call(session, progress_after(Progress.empty(N, CHUNKS), calls[0]), calls[1:2])
    assert (
        d.world.chain.revert_name(outsider, d.verifier, "stageChunks", *args) == "ChunkedRoundVerifier__WrongProgress"
    )


def test_a_chunked_round_leaves_out_a_silent_client_by_the_absence_rule(deployment, rounds, circuits):
    d, with_absent = deployment, rounds[3]
    world = d.world
    assert with_absent.commitments()[3] == absent_slot_commitment(circuits[0], D)
    d.stage(with_absent.calls)
    signatures = [
        bytes(65) if gone else world.protocol.sign_update(world.clients[i], d.task_id, 1, commitment)
        for i, (gone, commitment) in enumerate(zip(with_absent.absent, with_absent.commitments()))
    ]
    assert d.submit(1, with_absent, signatures=signatures) == "MPSRollup__CommitWindowOpen"
    world.travel_to(world.protocol.tasks.functions.commitDeadline(d.task_id).call() + 1)
    receipt = d.submit(1, with_absent, signatures=signatures)
    assert not isinstance(receipt, str), receipt
    (event,) = world.protocol.tasks.events.RoundSubmitted().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["absentMask"] == 1 << 3 and not event["args"]["flaggedMask"] >> 3 & 1


def packed(values) -> bytes:
    """abi.encodePacked of uint256 values."""
    return b"".join(int(v).to_bytes(32, "big") for v in values)


def bits(flags) -> int:
    return sum(1 << int(i) for i in np.flatnonzero(flags))


def test_a_dispute_checks_one_chunk_alone_against_the_signed_roots(deployment, rounds):
    """checkChunk takes one chunk proof with no staging; the commitments it starts with are the
    leaves the signed roots hold at its index, which a path of log2(K) hashes shows."""
    d, t = deployment, N * (N + 1) // 2
    for proven in (rounds[0], rounds[3]):
        signed = proven.commitments()
        absent = bits(proven.absent) if proven.absent is not None else 0
        for k, call in enumerate(proven.calls):
            selected, seen_absent, gram_hash = d.verifier.functions.checkChunk(
                call.proof, call.instances, vka_words(d.chunk_vka)
            ).call()
            assert (selected, seen_absent, gram_hash) == (
                bits(proven.reference.mask),
                absent,
                keccak(packed(call.instances[:t])),
            )
            for slot in range(N + 1):
                leaf = keccak(call.proof[64 * slot : 64 * (slot + 1)])
                assert path_root(leaf, k, chunk_path(proven.slot_chunks(slot), k)) == signed[slot][:32]


def test_the_combine_proof_is_checked_alone_over_the_chunks_summed_gram(deployment, rounds):
    d, first, t = deployment, rounds[0], N * (N + 1) // 2
    proof, instances, words = verify_arguments(first.combine_folder / steps.PROOF, d.combine_vka)
    selected, absent, scores, gram_hash = d.verifier.functions.checkCombine(proof, instances, words).call()
    assert (selected, absent, scores) == (bits(first.reference.mask), 0, instances[t + N : t + 2 * N])
    summed = [sum(column) % FIELD_MODULUS for column in zip(*(call.instances[:t] for call in first.calls))]
    assert gram_hash == keccak(packed(summed))  # what a dispute compares with the chunks' gram hashes


def test_checking_alone_refuses_a_tampered_proof_or_another_circuits_key(deployment, rounds):
    d, first = deployment, rounds[0]
    chunk_words, combine_words = vka_words(d.chunk_vka), vka_words(d.combine_vka)
    combine_proof, combine_instances, _ = verify_arguments(first.combine_folder / steps.PROOF, d.combine_vka)
    call = first.calls[0]
    broken = bytearray(call.proof)
    broken[64 * (N + 2) + 5] ^= 1  # past the commitments: the proof itself
    broken_combine = bytearray(combine_proof)
    broken_combine[len(combine_proof) // 2] ^= 1
    lowered = list(combine_instances)
    lowered[0] -= 1  # client 0's squared norm
    refusals = [
        ("checkChunk", bytes(broken), call.instances, chunk_words, "ChunkedRoundVerifier__ChunkRejected"),
        ("checkChunk", call.proof, call.instances, combine_words, "ChunkedRoundVerifier__WrongChunkCircuit"),
        ("checkCombine", bytes(broken_combine), combine_instances, combine_words, "RoundVerifier__ProofRejected"),
        ("checkCombine", combine_proof, lowered, combine_words, "RoundVerifier__ProofRejected"),
        ("checkCombine", combine_proof, combine_instances, chunk_words, "RoundVerifier__WrongCircuit"),
    ]
    for function, *args, error in refusals:
        assert d.world.chain.revert_name(d.aggregator, d.verifier, function, *args) == error, function


def test_the_explorer_counts_the_staging_the_round_used_in_its_epochs_gas(deployment, rounds):
    """An epoch's gas in the explorer is the round's transaction and the staging that made its
    record: someone staging the same chunks again afterwards adds nothing to it."""
    from stakelearn.pipeline.explorer.view import audited, task_view

    first, world = rounds[0], deployment.world
    staging = sum(deployment.stage(first.calls, round_session(deployment.task_id, 1)))
    copier = Deployment(
        world,
        deployment.verifier,
        deployment.task_id,
        new_account(world.chain, ETHER),
        *[deployment.chunk_vka, deployment.combine_vka],
    )
    assert sum(copier.stage(first.calls, round_session(deployment.task_id, 1))) > 0
    receipt = deployment.submit(1, first)
    view = task_view(world.protocol, deployment.task_id, audited(world.protocol, deployment.task_id))
    (epoch,) = view["epochs"]
    assert epoch["gas"] == receipt["gasUsed"] + staging
    assert epoch["flagged"] == [4] and view["problems"] == []
