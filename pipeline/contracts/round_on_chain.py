"""A round on an EVM, whatever its kind (prover.rounds): deploy the verifier its circuits need,
verify a round folder on a fresh one (``verify --evm``), or check a folder against a task's
deployed verifier by eth_calls only (``verify --verifier``).

Every kind goes on chain the same way: the proofs it stages first, if any, a few per
transaction (``stageChunks``, pipeline.contracts.chunked), then ``verifyRound`` over its one
submitted proof and the clients' commitments, which is what ``submitRound`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.chunked import (
    CHUNKS_PER_TRANSACTION,
    PROGRESS_TYPE,
    Progress,
    chunk_calls,
    progress_after,
    stage_chunks,
)
from stakelearn.pipeline.contracts.verifiers import DeployedRoundVerifier, EvmVerification, register_vka
from stakelearn.prover.evm import verify_arguments, verify_calldata, vka_words
from stakelearn.prover.rounds import Round, open_round
from stakelearn.verifier_contracts.build import load_artifact


def deploy_round_verifier(chain: Chain, round_: Round, verifier: str | None = None) -> DeployedRoundVerifier:
    """Deploy the verifier contract ``round_``'s kind needs, pinned to its circuits, on the
    reusable ezkl ``verifier`` (a new one if None), its VKAs registered there."""
    if verifier is None:
        verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    for vka in round_.verifier_vkas():
        register_vka(chain, verifier, vka)
    artifact = load_artifact(round_.verifier_contract)
    address, _ = chain.deploy(artifact, verifier, *round_.verifier_args())
    return DeployedRoundVerifier(chain, chain.contract(address, artifact.abi), verifier)


def verify_round_on_chain(
    folder: Path, chain: Chain, ceremony_srs: Path | None = None, per_transaction: int = CHUNKS_PER_TRANSACTION
) -> EvmVerification:
    """Deploy a verifier for the circuits a round folder ships, stage its staged proofs (a
    chunked round's chunk proofs) and verify its submitted proof against its commitments."""
    round_ = open_round(folder, ceremony_srs)
    deployed = deploy_round_verifier(chain, round_)
    staged, staged_vka = round_.staged_proofs(folder)
    stage_gas = []
    if staged:
        calls = chunk_calls(staged, staged_vka)
        stage_gas = stage_chunks(
            chain, chain.require_payer(), deployed.contract, bytes(32), calls, staged_vka, per_transaction
        )
    proof_json, vka = round_.submitted_proof(folder)
    proof, instances, words = verify_arguments(proof_json, vka)
    contract = deployed.contract
    data = contract.encode_abi("verifyRound", args=[proof, instances, words, b"".join(round_.commitments(folder))])
    receipt = chain.transact(contract.address, data)
    if receipt["status"] != 1:
        # Replay as a call to learn which check failed (only on the failure path: it costs time).
        return EvmVerification(ok=False, gas_used=None, reason=chain.call(contract.address, data).reason)
    (event,) = contract.events.RoundVerified().process_receipt(receipt, errors=DISCARD)
    return EvmVerification(True, receipt["gasUsed"], event["args"]["selectedMask"], stage_gas=stage_gas)


@dataclass(frozen=True)
class TaskVerifierCheck:
    """What a task's deployed round verifier says of a round folder (eth_calls: nothing is sent)."""

    staged: int  # the proofs checked through the contract's own stageChunks
    selected_mask: int
    submitted_by: str  # what checked the submitted proof: "verifyRound", or the pinned reusable
    # verifier when the round is not staged on chain


def _view(chain: Chain, contract, name: str, function: str, *args):
    """``contract``'s view ``function`` as an eth_call, decoded; StakeLearnError if it has none."""
    answer = chain.call(contract.address, contract.encode_abi(function, args=list(args)))
    outputs = next(item for item in contract.abi if item.get("name") == function)["outputs"]
    try:
        if not answer.ok:
            raise ValueError(answer.reason)
        values = decode([output["type"] for output in outputs], answer.data)
    except (ValueError, DecodingError):  # no code, another contract, a revert: not the verifier asked for
        raise StakeLearnError(
            f"{contract.address} is not a {name} (its {function}() does not answer); give the task's round verifier"
        ) from None
    return values[0] if len(values) == 1 else values


def _check_pins(chain: Chain, contract, round_: Round) -> None:
    """The verifier must pin exactly this round's circuits (VKA digests) and shape."""
    name = round_.verifier_contract
    for function, own in round_.pinned().items():
        pinned = _view(chain, contract, name, function)
        if pinned == own:
            continue
        if function.lower().endswith("vkadigest"):
            raise StakeLearnError(
                f"the folder's circuit (VKA digest 0x{own.hex()}, {function}) is not the one the {name} at "
                f"{contract.address} pins (0x{pinned.hex()}): the round was not proven with the task's circuits"
            )
        raise StakeLearnError(
            f"the folder's round has {function} = {own!r}, the {name} at {contract.address} pins {pinned!r}"
        )


def _check_staged(chain: Chain, contract, round_: Round, folder: Path) -> int:
    """Each staged proof through the contract's own ``stageChunks`` (a fresh session per call, so
    nothing needs staging first), folding as :func:`progress_after` says; how many there were."""
    staged, vka = round_.staged_proofs(folder)
    if not staged:
        return 0
    words, empty = vka_words(vka), Progress.empty(round_.params.n, len(staged))
    for k, call in enumerate(chunk_calls(staged, vka)):
        data = contract.encode_abi(
            "stageChunks", args=[bytes(32), empty.as_abi(), [(call.proof, call.instances)], words]
        )
        answer = chain.call(contract.address, data)
        if not answer.ok:
            raise StakeLearnError(
                f"the task's {round_.verifier_contract} at {contract.address} rejects chunk {k}: {answer.reason}"
            )
        (folded,) = decode([PROGRESS_TYPE], answer.data)
        if keccak(encode([PROGRESS_TYPE], [folded])) != progress_after(empty, call).digest:
            raise StakeLearnError(
                f"the task's {round_.verifier_contract} at {contract.address} folds chunk {k} otherwise than expected"
            )
    return len(staged)


def check_with_task_verifier(
    chain: Chain, verifier_address: str, folder: Path, ceremony_srs: Path | None = None
) -> TaskVerifierCheck:
    """Check a round folder against the round verifier a task pins, by eth_calls only: the
    folder's circuits must be the ones it pins and its shape the verifier's; each staged proof
    must go through ``stageChunks``; the submitted proof through ``verifyRound``, or, for a
    round that stages proofs but is not staged on chain, through the reusable verifier the
    contract calls (for the pinned digest). The circuit is then the task's, not the folder's
    word. Raises StakeLearnError in one line."""
    try:
        address = to_checksum_address(verifier_address)
    except ValueError:
        raise StakeLearnError(f"--verifier {verifier_address!r} is not an address") from None
    round_ = open_round(folder, ceremony_srs)
    contract = chain.contract(address, load_artifact(round_.verifier_contract).abi)
    _check_pins(chain, contract, round_)
    staged = _check_staged(chain, contract, round_, folder)
    proof_json, vka = round_.submitted_proof(folder)
    proof, instances, words = verify_arguments(proof_json, vka)
    commitments = b"".join(round_.commitments(folder))
    verify_round = contract.encode_abi("verifyRound", args=[proof, instances, words, commitments])
    if not staged or _view(
        chain, contract, round_.verifier_contract, "staged", keccak(commitments), _mask(round_, instances)
    ):
        answer, by = chain.call(address, verify_round), "verifyRound"
    else:
        reusable = to_checksum_address(_view(chain, contract, round_.verifier_contract, "verifier"))
        answer = chain.call(reusable, verify_calldata(proof_json, vka))
        accepted = answer.ok and len(answer.data) >= 64 and decode(["bool", "bytes32"], answer.data[:64])[0]
        if answer.ok and not accepted:  # the contract reads (success, digest); the digest is the pinned one
            answer = replace(answer, ok=False, error="the reusable verifier does not accept it")
        by = "the pinned reusable verifier"
    if not answer.ok:
        raise StakeLearnError(f"the task's {round_.verifier_contract} at {address} rejects the round: {answer.reason}")
    return TaskVerifierCheck(staged, _mask(round_, instances), by)


def _mask(round_: Round, instances: list[int]) -> int:
    """The selection mask a submitted proof's public instances carry."""
    start = round_.mask_offset
    return sum(int(v) << i for i, v in enumerate(instances[start : start + round_.params.n]))
