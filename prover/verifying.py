"""What a verifier needs, shipped with every proof folder: anyone can check it anywhere.

Two builds of the same circuit are not identical (ezkl 23 orders the settings'
``required_range_checks`` differently from one build to the next, which changes the verifying
key), so a verifier must never rebuild the circuit: the prover copies its settings, verifying
key, VK artifact and SRS into the folder and pins each by SHA-256 in the folder's manifest. The
circuit a folder claims is then anchored by its VKA digest, which a task's verifier contract
pins on chain.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from stakelearn.errors import ArtifactError, ProofError
from stakelearn.prover import steps
from stakelearn.prover.circuit import PreparedCircuit
from stakelearn.prover.evm import vka_digest
from stakelearn.prover.srs import Srs

SRS_FILE = "kzg.srs"
SHIPPED = (steps.SETTINGS, steps.VK, steps.VKA, SRS_FILE)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship_verifying_files(prepared: PreparedCircuit, folder: Path) -> dict[str, str]:
    """Copy what verifies ``prepared``'s proofs into ``folder``; return each file's SHA-256."""
    sources = {
        steps.SETTINGS: prepared.settings,
        steps.VK: prepared.vk,
        steps.VKA: prepared.vka,
        SRS_FILE: prepared.srs.path,
    }
    for name, source in sources.items():
        shutil.copyfile(source, folder / name)
    return {name: sha256_file(folder / name) for name in SHIPPED}


def shipped_circuit(folder: Path, circuit, manifest: dict, ceremony_srs: Path | None = None) -> PreparedCircuit:
    """The circuit as the folder ships it, each file checked against the manifest's digest, and
    the VK artifact re-derived from the verifying key, settings and SRS, so that the VKA digest
    the manifest states (the one a task's verifier contract pins) is the circuit's that verifies
    the proof. ``ceremony_srs``, when given, must be the very SRS the proof was made with."""
    pinned = manifest.get("verifying", {})
    for name in SHIPPED:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{path} is missing or not a regular file: verifying needs the file itself")
        if sha256_file(path) != pinned.get(name):
            raise ProofError(
                f"{path} is not the file the proof was made with (its SHA-256 differs from the manifest's)"
            )
    if ceremony_srs is not None and sha256_file(ceremony_srs) != pinned[SRS_FILE]:
        raise ProofError(
            f"the proof was not made with the SRS {ceremony_srs}; it was made with the SRS shipped as {SRS_FILE}"
        )
    with tempfile.TemporaryDirectory() as scratch:
        derived = steps.create_vka(
            folder / steps.VK, folder / steps.SETTINGS, Path(scratch) / steps.VKA, folder / SRS_FILE
        )
        if derived.read_bytes() != (folder / steps.VKA).read_bytes():
            raise ProofError(f"{folder / steps.VKA} is not the VK artifact of the shipped verifying key")
    if manifest.get("vka_digest") != "0x" + vka_digest(folder / steps.VKA).hex():
        raise ProofError(f"the manifest's VKA digest is not the digest of {folder / steps.VKA}")
    srs = Srs(path=folder / SRS_FILE, logrows=manifest["logrows"], insecure=manifest["srs"]["insecure"])
    return PreparedCircuit(circuit=circuit, model_dir=folder, key_dir=folder, srs=srs)


def unexpected_files(folder: Path, known: set[str], folders: frozenset[str] = frozenset()) -> None:
    """A verifier reports on every file of a folder, so a file it does not check is an error, and
    so is a link or a special file in place of one it checks (it could point anywhere, or block);
    the names in ``folders`` must be real folders (which the caller checks in turn)."""
    extra = sorted(path.name for path in folder.iterdir() if path.name not in known)
    if extra:
        raise ProofError(
            f"{folder} holds {extra[0]}, which is not part of a proof folder and would go unchecked; remove it"
        )
    odd = sorted(
        path.name
        for path in folder.iterdir()
        if path.is_symlink() or not (path.is_dir() if path.name in folders else path.is_file())
    )
    if odd:
        raise ProofError(f"{folder / odd[0]} is not a regular file or folder: a proof folder holds no links")


def refuse_links(folder: Path) -> None:
    """A proof folder holds only its own regular files and folders, at every depth: a link
    anywhere in it (to a file or a folder) could point anywhere, and a special file (a FIFO, a
    device) could block the verifier. Nothing is followed or opened; ProofError names the first."""
    for root, folders, files in os.walk(folder):  # links to folders are listed, never entered
        for name in sorted(folders + files):
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise ProofError(f"{path} is not a regular file or folder: a proof folder holds no links")


def check_text(path: Path, expected: str) -> None:
    """A human-readable file must say exactly what the proof says."""
    if path.exists() and path.read_text() != expected:
        raise ProofError(f"{path} does not say what the proof says: it was edited after proving")
