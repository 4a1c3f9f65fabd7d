"""Chunked rounds on chain: deploy a ChunkedRoundVerifier and stage a round's chunk proofs.

A chunked round goes on chain in two parts (verifier_contracts/src/IChunkedRoundVerifier.sol):
the chunk proofs, in chunk order, a few per transaction (``stageChunks``), then the usual
``submitRound`` whose proof is the combine proof. Staging keeps one hash of its progress on
chain; the stager passes the progress itself back in, so :func:`progress_after` is the
off-chain twin of the contract's fold, and a stager that crashed resumes after the last chunk
the chain recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from stakelearn.circuits.chunk import chunk_count, triangle_size
from stakelearn.errors import ProofError, StakeLearnError
from stakelearn.models.quantize import FIELD_MODULUS
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.verifiers import DeployedRoundVerifier, register_vka
from stakelearn.prover.chunked import absent_chained_commitment
from stakelearn.prover.chunked_round import COMBINE, chunk_proof_folders, chunked_circuits, chunked_commitments
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.evm import verify_arguments, verify_calldata, vka_digest, vka_words
from stakelearn.prover.steps import PROOF
from stakelearn.verifier_contracts.build import load_artifact

PROGRESS_TYPE = "(uint256,bytes32[],bytes32,uint256,uint256,uint256[])"


@dataclass(frozen=True)
class Progress:
    """IChunkedRoundVerifier.Progress: what a staging session has folded in so far."""

    chunks: int
    slices: tuple[bytes, ...]  # per slot, the hash chain of its chunk commitments
    aggregate: bytes
    selected_mask: int
    absent_mask: int
    gram: tuple[int, ...]  # the running sum of the partial Gram matrices, in the field

    @classmethod
    def empty(cls, n: int) -> Progress:
        return cls(0, (bytes(32),) * n, bytes(32), 0, 0, (0,) * triangle_size(n))

    def as_abi(self) -> tuple:
        return (self.chunks, list(self.slices), self.aggregate, self.selected_mask, self.absent_mask, list(self.gram))

    @property
    def digest(self) -> bytes:
        """keccak256(abi.encode(progress)), the hash the contract keeps."""
        return keccak(encode([PROGRESS_TYPE], [self.as_abi()]))


@dataclass(frozen=True)
class ChunkCall:
    """One chunk proof as ``stageChunks`` takes it."""

    proof: bytes
    instances: list[int]


def _bits(values: Sequence[int]) -> int:
    return sum(int(v) << i for i, v in enumerate(values))


def progress_after(progress: Progress, chunk: ChunkCall) -> Progress:
    """The contract's fold of one (valid) chunk proof into ``progress``."""
    n, t = len(progress.slices), len(progress.gram)
    mask, absent = _bits(chunk.instances[t : t + n]), _bits(chunk.instances[t + n : t + 2 * n])
    piece = chunk.proof
    return replace(
        progress,
        chunks=progress.chunks + 1,
        slices=tuple(keccak(h + piece[64 * i : 64 * (i + 1)]) for i, h in enumerate(progress.slices)),
        aggregate=keccak(progress.aggregate + piece[64 * n : 64 * (n + 1)]),
        selected_mask=mask,
        absent_mask=absent,
        gram=tuple((g + x) % FIELD_MODULUS for g, x in zip(progress.gram, chunk.instances[:t])),
    )


def chunk_calls(chunk_folders: Sequence[Path], vka: Path) -> list[ChunkCall]:
    calls = []
    for folder in chunk_folders:
        proof, instances, _ = verify_arguments(folder / PROOF, vka)
        calls.append(ChunkCall(proof, instances))
    return calls


def deploy_chunked_round_verifier(
    chain: Chain, chunk: PreparedCircuit, combine: PreparedCircuit, d: int, verifier: str | None = None
) -> DeployedRoundVerifier:
    """Deploy a ChunkedRoundVerifier pinned to the chunk and combine circuits' VKAs for rounds of
    ``d`` coordinates (so ``ceil(d / C)`` chunks), on the reusable ``verifier`` (a new one if None)."""
    if verifier is None:
        verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    for prepared in (chunk, combine):
        register_vka(chain, verifier, prepared.vka)
    artifact = load_artifact("ChunkedRoundVerifier")
    address, _ = chain.deploy(artifact, *chunked_round_verifier_args(verifier, chunk, combine, d))
    return DeployedRoundVerifier(chain, chain.contract(address, artifact.abi), verifier)


def chunked_round_verifier_args(verifier: str, chunk: PreparedCircuit, combine: PreparedCircuit, d: int) -> tuple:
    """ChunkedRoundVerifier's constructor arguments: the reusable verifier, both pinned VKA
    digests, n, f, m, the chunks of a ``d``-coordinate round and the absent slot's chained commitment."""
    c = combine.circuit
    chunks = chunk_count(d, chunk.circuit.chunk)
    absent = keccak(absent_chained_commitment(chunk, d))
    return verifier, vka_digest(chunk.vka), vka_digest(combine.vka), c.n, c.f, c.m, chunks, absent


def round_session(task_id: int, epoch: int) -> bytes:
    """The staging session an aggregator uses for one epoch of a task."""
    return keccak(encode(["uint256", "uint256"], [task_id, epoch]))


def resume_point(recorded: bytes, calls: Sequence[ChunkCall], n: int) -> tuple[int, Progress]:
    """Where staging resumes: after the chunks whose progress the chain recorded, else at 0."""
    progress = Progress.empty(n)
    prefixes = [progress]
    for call in calls:
        progress = progress_after(progress, call)
        prefixes.append(progress)
    for done, prefix in enumerate(prefixes):
        if done and prefix.digest == recorded:
            return done, prefix
    return 0, prefixes[0]


def stage_chunks(
    chain: Chain,
    account,
    verifier,
    session: bytes,
    calls: Sequence[ChunkCall],
    chunk_vka: Path,
    per_transaction: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[int]:
    """Stage a round's chunk proofs with the ChunkedRoundVerifier contract ``verifier``, at most
    ``per_transaction`` per transaction, resuming after what the chain already recorded for
    ``account``'s ``session``; return the gas of each transaction sent. ``progress(done, total,
    gas)`` is told after each transaction."""
    n = verifier.functions.clients().call()
    if len(calls) != verifier.functions.CHUNKS().call():
        raise ProofError(f"the verifier takes {verifier.functions.CHUNKS().call()} chunk proofs, got {len(calls)}")
    sender = account if isinstance(account, str) else account.address  # an unlocked account, or a local key
    recorded = verifier.functions.progressHash(sender, session).call()
    done, state = resume_point(recorded, calls, n)
    words = vka_words(chunk_vka)
    gas = []
    while done < len(calls):
        batch = calls[done : done + max(1, per_transaction)]
        args = [(c.proof, c.instances) for c in batch]
        receipt = chain.execute(account, verifier, "stageChunks", session, state.as_abi(), args, words)
        for call in batch:
            state = progress_after(state, call)
        done += len(batch)
        gas.append(receipt["gasUsed"])
        if progress is not None:
            progress(done, len(calls), receipt["gasUsed"])
    return gas


@dataclass(frozen=True)
class ChunkedVerification:
    """The gas of verifying a chunked round on an EVM: each staging transaction, then the combine."""

    stage_gas: list[int]
    combine_gas: int
    selected_mask: int

    @property
    def total_gas(self) -> int:
        return sum(self.stage_gas) + self.combine_gas


CHUNKS_PER_TRANSACTION = 4  # a chunk proof costs about 2 M gas: four fit a 30 M block with room


def verify_chunked_round_on_chain(
    folder: Path, chain: Chain, per_transaction: int = CHUNKS_PER_TRANSACTION, ceremony_srs: Path | None = None
) -> ChunkedVerification:
    """Deploy a ChunkedRoundVerifier for the circuits a chunked round folder ships, stage its
    chunk proofs and verify its combine proof against its commitments; ProofError if refused."""
    manifest, chunk, combine = chunked_circuits(folder, ceremony_srs)
    deployed = deploy_chunked_round_verifier(chain, chunk, combine, manifest["d"])
    calls = chunk_calls(chunk_proof_folders(folder, manifest["chunks"]), chunk.vka)
    payer = chain.require_payer()
    gas = stage_chunks(chain, payer, deployed.contract, bytes(32), calls, chunk.vka, per_transaction)
    proof, instances, words = verify_arguments(folder / COMBINE / PROOF, combine.vka)
    commitments = b"".join(chunked_commitments(folder))
    data = deployed.contract.encode_abi("verifyRound", args=[proof, instances, words, commitments])
    receipt = chain.transact(deployed.contract.address, data)
    if receipt["status"] != 1:
        raise ProofError(
            f"EVM verification on {chain.name} failed: {chain.call(deployed.contract.address, data).reason}"
        )
    (event,) = deployed.contract.events.RoundVerified().process_receipt(receipt, errors=DISCARD)
    return ChunkedVerification(gas, receipt["gasUsed"], event["args"]["selectedMask"])


@dataclass(frozen=True)
class ChunkedRoundCheck:
    """What a deployed ChunkedRoundVerifier says of a chunked round folder (eth_calls: nothing sent)."""

    chunks: int
    selected_mask: int
    combine_by: str  # what checked the combine proof: "verifyRound" (the round is staged on chain),
    # else "the pinned reusable verifier"


def _view(chain: Chain, contract, function: str, *args):
    """``contract``'s view ``function`` as an eth_call, decoded; StakeLearnError if it has none."""
    answer = chain.call(contract.address, contract.encode_abi(function, args=list(args)))
    outputs = next(item for item in contract.abi if item.get("name") == function)["outputs"]
    try:
        if not answer.ok:
            raise ValueError(answer.reason)
        values = decode([output["type"] for output in outputs], answer.data)
    except (ValueError, DecodingError):  # no code, another contract, a revert: not the verifier asked for
        raise StakeLearnError(
            f"{contract.address} is not a ChunkedRoundVerifier (its {function}() does not answer); give the "
            "task's round verifier"
        ) from None
    return values[0] if len(values) == 1 else values


def check_with_task_chunked_verifier(
    chain: Chain, verifier_address: str, folder: Path, ceremony_srs: Path | None = None
) -> ChunkedRoundCheck:
    """Check a chunked round folder against the ChunkedRoundVerifier a task pins, with eth_calls
    only: the folder's chunk and combine circuits must be the ones it pins (VKA digests), and its
    shape (n, f, m, chunks, the absent slot's commitment) the verifier's; then each chunk proof
    goes through the contract's own ``stageChunks`` (a fresh session per call, so nothing needs
    staging first) and must fold as :func:`progress_after` says, and the combine proof through
    ``verifyRound`` if the round is staged on chain, else through the reusable verifier the
    contract calls, for the pinned combine digest. Raises StakeLearnError in one line."""
    try:
        address = to_checksum_address(verifier_address)
    except ValueError:
        raise StakeLearnError(f"--verifier {verifier_address!r} is not an address") from None
    contract = chain.contract(address, load_artifact("ChunkedRoundVerifier").abi)
    manifest, chunk, combine = chunked_circuits(folder, ceremony_srs)
    for what, function, prepared in (("chunk", "chunkVkaDigest", chunk), ("combine", "vkaDigest", combine)):
        pinned, own = _view(chain, contract, function), vka_digest(prepared.vka)
        if pinned != own:
            raise StakeLearnError(
                f"the folder's {what} circuit (VKA digest 0x{own.hex()}) is not the one the ChunkedRoundVerifier at "
                f"{address} pins (0x{pinned.hex()}): the round was not proven with the task's circuits"
            )
    c, d = combine.circuit, manifest["d"]
    shape = {
        "clients": c.n,
        "byzantine": c.f,
        "selected": c.m,
        "CHUNKS": manifest["chunks"],
        "absentCommitment": keccak(absent_chained_commitment(chunk, d)),
    }
    for function, own in shape.items():
        pinned = _view(chain, contract, function)
        if pinned != own:
            raise StakeLearnError(
                f"the folder's round has {function} = {own!r}, the ChunkedRoundVerifier at {address} pins {pinned!r}"
            )
    words = vka_words(chunk.vka)
    calls = chunk_calls(chunk_proof_folders(folder, manifest["chunks"]), chunk.vka)
    empty = Progress.empty(c.n)
    for k, call in enumerate(calls):
        data = contract.encode_abi(
            "stageChunks", args=[bytes(32), empty.as_abi(), [(call.proof, call.instances)], words]
        )
        answer = chain.call(address, data)
        if not answer.ok:
            raise StakeLearnError(f"the task's ChunkedRoundVerifier at {address} rejects chunk {k}: {answer.reason}")
        (folded,) = decode([PROGRESS_TYPE], answer.data)
        if keccak(encode([PROGRESS_TYPE], [folded])) != progress_after(empty, call).digest:
            raise StakeLearnError(
                f"the task's ChunkedRoundVerifier at {address} folds chunk {k} otherwise than expected"
            )
    proof, instances, combine_words = verify_arguments(folder / COMBINE / PROOF, combine.vka)
    commitments = b"".join(chunked_commitments(folder))
    t = triangle_size(c.n)
    mask = _bits(instances[t + 2 * c.n : t + 3 * c.n])
    if _view(chain, contract, "staged", keccak(commitments), mask):
        answer = chain.call(
            address, contract.encode_abi("verifyRound", args=[proof, instances, combine_words, commitments])
        )
        by = "verifyRound"
    else:
        reusable = to_checksum_address(_view(chain, contract, "verifier"))
        answer = chain.call(reusable, verify_calldata(folder / COMBINE / PROOF, combine.vka))
        accepted = answer.ok and len(answer.data) >= 64 and decode(["bool", "bytes32"], answer.data[:64])[0]
        if answer.ok and not accepted:  # the contract reads (success, digest); the digest is the pinned one
            answer = replace(answer, ok=False, error="the reusable verifier does not accept it")
        by = "the pinned reusable verifier"
    if not answer.ok:
        raise StakeLearnError(
            f"the task's ChunkedRoundVerifier at {address} rejects the combine proof: {answer.reason}"
        )
    return ChunkedRoundCheck(len(calls), mask, by)
