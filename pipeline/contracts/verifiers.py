"""Verify proofs on an EVM: ezkl's generated reusable verifier behind RoundVerifier (rounds)
or AccuracyVerifier (accuracy).

Each wrapper (verifier_contracts/src) pins its circuit's VKA digest, checks that the proof's
input commitments are the ones the caller supplies and the outputs are well formed, then calls
the reusable verifier. All are deployed from the committed artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from eth_abi import decode, encode
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from stakelearn.errors import ProofError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.prover.accuracy import COMMITMENTS as ACCURACY_COMMITMENTS
from stakelearn.prover.accuracy import MANIFEST as ACCURACY_MANIFEST
from stakelearn.prover.accuracy import accuracy_call_arguments, batch_count
from stakelearn.prover.accuracy import circuit_of as accuracy_circuit_of
from stakelearn.prover.accuracy_circuit import AccuracyCircuit
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.evm import verify_arguments, verify_calldata, vka_digest, vka_words
from stakelearn.prover.onnx_accuracy import OnnxAccuracyCircuit
from stakelearn.prover.verifying import shipped_circuit
from stakelearn.verifier_contracts.build import load_artifact

REGISTER_VKA_SELECTOR = bytes.fromhex("dc8b4094")  # registerVka(bytes32[])


@dataclass(frozen=True)
class EvmVerification:
    """A round verified on an EVM: ``verifyRound``'s outcome and gas, after the gas of each
    transaction that staged its staged proofs (a chunked round's chunk proofs)."""

    ok: bool
    gas_used: int | None
    selected_mask: int | None = None
    reason: str = ""
    stage_gas: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DeployedRoundVerifier:
    chain: Chain
    contract: object  # web3 contract bound to RoundVerifier
    verifier: str  # the reusable verifier's address


def register_vka(chain: Chain, verifier: str, vka: Path) -> None:
    receipt = chain.transact(verifier, REGISTER_VKA_SELECTOR + encode(["bytes32[]"], [vka_words(vka)]))
    if receipt["status"] != 1:
        raise ProofError(f"the reusable verifier at {verifier} refused to register the VKA {vka}")


def accuracy_verifier_args(verifier: str, prepared: PreparedCircuit, samples: int) -> tuple:
    """AccuracyVerifier's constructor arguments for the prepared accuracy circuit and an evaluation
    set of ``samples``: the reusable verifier, the pinned VKA digest, the samples, the model's
    chunks (0 when taken whole) and the batches the set is proven in. (The set's shape and
    ranges are the circuit's: it checks them, pinned by the VKA.)"""
    circuit = prepared.circuit
    digest = vka_digest(prepared.vka)
    if not isinstance(circuit, (AccuracyCircuit, OnnxAccuracyCircuit)) or samples % circuit.samples:
        # a circuit that cannot take such a set: arguments that deploy, pinned to no task's shape
        return verifier, digest, samples, 2**256 - 1, 1
    chunks = circuit.model_parts if circuit.chunk else 0
    return verifier, digest, samples, chunks, batch_count(samples, circuit)


def deploy_accuracy_verifier(chain: Chain, prepared: PreparedCircuit, verifier: str, samples: int | None = None):
    """Register the accuracy circuit's VKA with the reusable ``verifier`` and deploy an
    AccuracyVerifier pinned to it, for evaluation sets of ``samples`` (default: one batch)."""
    register_vka(chain, verifier, prepared.vka)
    artifact = load_artifact("AccuracyVerifier")
    samples = prepared.circuit.samples if samples is None else samples
    batch_count(samples, prepared.circuit)  # a set the circuit cannot take in whole batches: InputError
    address, _ = chain.deploy(artifact, *accuracy_verifier_args(verifier, prepared, samples))
    return chain.contract(address, artifact.abi)


def verify_on_chain(
    deployed: DeployedRoundVerifier, proof_json: Path, vka: Path, commitments: list[str]
) -> EvmVerification:
    """Verify one proof against the given signed commitments (hex, updates then aggregate)."""
    proof, instances, words = verify_arguments(proof_json, vka)
    packed = b"".join(bytes.fromhex(c) for c in commitments)
    contract, chain = deployed.contract, deployed.chain
    data = contract.encode_abi("verifyRound", args=[proof, instances, words, packed])
    receipt = chain.transact(contract.address, data)
    if receipt["status"] != 1:
        # Replay as a call to learn which check failed (only on the failure path: it costs time).
        return EvmVerification(ok=False, gas_used=None, reason=chain.call(contract.address, data).reason)
    (event,) = contract.events.RoundVerified().process_receipt(receipt, errors=DISCARD)
    return EvmVerification(ok=True, gas_used=receipt["gasUsed"], selected_mask=event["args"]["selectedMask"])


def verifier_only_gas(deployed: DeployedRoundVerifier, proof_json: Path, vka: Path) -> int:
    """Gas of the reusable verifier's ``verifyProof`` alone, without RoundVerifier's checks."""
    receipt = deployed.chain.transact(deployed.verifier, verify_calldata(proof_json, vka))
    if receipt["status"] != 1:
        raise ProofError(f"the reusable verifier rejects {proof_json}")
    return receipt["gasUsed"]


def verify_accuracy_on_chain(folder: Path, chain: Chain, ceremony_srs: Path | None = None) -> int:
    """Deploy the verifiers for the accuracy circuit an accuracy folder names and verify its proof
    against its commitments; return the gas, or raise ProofError naming the failed check."""
    manifest = json.loads((folder / ACCURACY_MANIFEST).read_text())
    prepared = shipped_circuit(folder, accuracy_circuit_of(manifest, folder), manifest, ceremony_srs)
    verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    samples = manifest["batches"] * prepared.circuit.samples
    contract = deploy_accuracy_verifier(chain, prepared, verifier, samples)
    commitments = json.loads((folder / ACCURACY_COMMITMENTS).read_text())
    proof, instances, words = accuracy_call_arguments(folder, prepared.vka)
    data = contract.encode_abi("verifyAccuracy", args=[proof, instances, words, bytes.fromhex(commitments["model"])])
    receipt = chain.transact(contract.address, data)
    if receipt["status"] != 1:
        raise ProofError(f"EVM verification on {chain.name} failed: {chain.call(contract.address, data).reason}")
    return receipt["gasUsed"]


@dataclass(frozen=True)
class RoundCheck:
    """What a deployed RoundVerifier says of a round (an eth_call: nothing is sent)."""

    ok: bool
    selected_mask: int = 0
    absent_mask: int = 0
    scores: tuple[int, ...] = ()  # the proven raw Krum scores, one per client
    reason: str = ""


def check_round(
    chain: Chain, verifier_address: str, proof: bytes, instances: list, vka: list, commitments: bytes
) -> RoundCheck:
    """Ask the RoundVerifier at ``verifier_address`` whether the proof holds over ``commitments``."""
    verifier = chain.contract(to_checksum_address(verifier_address), load_artifact("RoundVerifier").abi)
    result = chain.call(verifier.address, verifier.encode_abi("verifyRound", args=[proof, instances, vka, commitments]))
    if not result.ok:
        return RoundCheck(ok=False, reason=result.reason)
    selected, absent, scores = decode(["uint256", "uint256", "uint256[]"], result.data)
    return RoundCheck(ok=True, selected_mask=selected, absent_mask=absent, scores=tuple(scores))


def absent_commitment_hash(chain: Chain, verifier_address: str) -> bytes:
    """keccak256 of the commitment an absent slot must hold, as the RoundVerifier pins it."""
    return chain.contract(verifier_address, load_artifact("RoundVerifier").abi).functions.absentCommitment().call()
