"""What the EVM verifier needs from a proof: the VK artifact (VKA) words and the calldata.

ezkl's reusable verifier (``Halo2VerifierReusable``) verifies any circuit whose VKA has been
registered with it. Registration is open to anyone, so a caller must pin the digest
(keccak256 of the VKA words) of the circuit it expects; :func:`vka_digest` gives it.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

from eth_abi import decode
from eth_utils import keccak

from stakelearn.errors import ArtifactError
from stakelearn.prover import steps


def vka_words(vka: Path) -> list[bytes]:
    """The 32-byte words of a VKA file (bincode: u64 little-endian count, then the words)."""
    data = vka.read_bytes()
    if len(data) < 8:
        raise ArtifactError(f"{vka}: not a VKA file")
    (count,) = struct.unpack_from("<Q", data)
    if len(data) != 8 + 32 * count:
        raise ArtifactError(f"{vka}: expected {count} words, file has {len(data) - 8} bytes after the count")
    return [data[8 + 32 * i : 8 + 32 * (i + 1)] for i in range(count)]


def vka_digest(vka: Path) -> bytes:
    """The digest the reusable verifier assigns to this VKA: keccak256 of its packed words."""
    return keccak(b"".join(vka_words(vka)))


def verify_calldata(proof: Path, vka: Path) -> bytes:
    """ezkl's calldata of ``verifyProof(bytes proof, uint256[] instances, bytes32[] vka)``."""
    with tempfile.TemporaryDirectory() as tmp:
        return steps.encode_calldata(proof, Path(tmp) / "calldata.bytes", vka)


def verify_arguments(proof: Path, vka: Path) -> tuple[bytes, list[int], list[bytes]]:
    """The arguments of ``verifyProof``, decoded from ezkl's calldata."""
    proof_bytes, instances, words = decode(["bytes", "uint256[]", "bytes32[]"], verify_calldata(proof, vka)[4:])
    return proof_bytes, list(instances), list(words)


def generate_reusable_verifier(vk: Path, settings: Path, srs: Path, folder: Path) -> Path:
    """Have ezkl write its reusable verifier's Solidity source into ``folder``. The source is
    the same for every circuit; the committed copy is verifier_contracts/generated/."""
    steps.create_reusable_verifier(vk, settings, folder / steps.VERIFIER_SOL, folder / steps.VERIFIER_ABI, srs)
    return folder / steps.VERIFIER_SOL
