"""Structured reference strings (SRS) for KZG, cached per logrows.

The default is a locally generated SRS. It is INSECURE: whoever generated it knows its toxic
waste and can forge proofs. It is fine for tests and the demo only. Production passes a
ceremony SRS file (for example a perpetual-powers-of-tau file converted to halo2's format)
whose ``k`` equals the circuit's logrows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.prover import steps
from stakelearn.prover.isolate import run_isolated
from stakelearn.prover.publish import publish_file

log = logging.getLogger(__name__)

INSECURE_LABEL = "INSECURE local SRS (toxic waste known; tests and demos only)"


def stakelearn_home() -> Path:
    """Where keys, SRS files and compiled circuits are cached (``$STAKELEARN_HOME``)."""
    return Path(os.environ.get("STAKELEARN_HOME", Path.home() / ".cache" / "stakelearn"))


@dataclass(frozen=True)
class Srs:
    path: Path
    logrows: int
    insecure: bool

    @property
    def label(self) -> str:
        return INSECURE_LABEL if self.insecure else f"ceremony SRS {self.path}"

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def srs_logrows(path: Path) -> int:
    """The ``k`` of a halo2 KZG params file (its first 4 bytes, little-endian)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if len(head) != 4:
        raise InputError(f"{path}: not an SRS file (too short)")
    return struct.unpack("<I", head)[0]


def local_insecure_srs(logrows: int) -> Srs:
    """The cached local SRS for ``logrows``, generated on first use."""
    path = stakelearn_home() / "srs" / f"insecure-local-k{logrows}.srs"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        log.warning(f"WARNING: generating an {INSECURE_LABEL}")
        run_isolated(f"generating SRS k={logrows}", steps.gen_srs, tmp, logrows)
        # Never replaced once published: keys set up with it would no longer match it. Another
        # process's SRS published first is a hit (each local SRS is random; any one will do).
        publish_file(tmp, path, _same_size_srs)
    return Srs(path=path, logrows=logrows, insecure=True)


def _same_size_srs(published: Path, ours: Path) -> bool:
    """Whether another process's SRS file is a whole one of our ``k``: its header's ``k`` and its
    size (fixed by ``k``) are those of the one we generated."""
    return srs_logrows(published) == srs_logrows(ours) and published.stat().st_size == ours.stat().st_size


def ceremony_srs(path: Path, logrows: int) -> Srs:
    """A ceremony SRS file given by the user; its ``k`` must equal the circuit's logrows."""
    if not path.is_file():
        raise InputError(f"SRS file {path} does not exist; pass a halo2 KZG params file")
    k = srs_logrows(path)
    if k != logrows:
        raise InputError(
            f"SRS file {path} has k={k} but the circuit needs k={logrows}; reduce the ceremony file to that size first"
        )
    return Srs(path=path, logrows=logrows, insecure=False)


def resolve_srs(logrows: int, ceremony: Path | None) -> Srs:
    return ceremony_srs(ceremony, logrows) if ceremony else local_insecure_srs(logrows)
