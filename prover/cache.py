"""What the key cache (``$STAKELEARN_HOME``) holds, and pruning it: proving keys run to GBs.

circuits/<digest>/              a compiled circuit (circuit.json says which)
circuits/<digest>/keys-<srs>/   its proving and verifying keys for one SRS
srs/                            SRS files, one per logrows (minutes to make at large k)
shipped/<digest>/               a chunk circuit's files a Ray driver shipped to this node
.<name>.tmp-*                   what an interrupted build or set-up left behind

Every folder entry holds entry.sha256, the digests of its files as its builder published them
(prover.publish: two processes building one entry at once both use the first one published).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from stakelearn.prover.circuit import DESCRIPTION
from stakelearn.prover.parallel import SHIPPED
from stakelearn.prover.srs import stakelearn_home


@dataclass(frozen=True)
class CacheEntry:
    kind: str  # "circuit", "keys", "srs" or "leftover"
    path: Path
    label: str
    bytes: int


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _label(circuit_dir: Path) -> str:
    try:
        return json.loads((circuit_dir / DESCRIPTION).read_text())["label"]
    except (OSError, ValueError, KeyError):
        return "(built by an older version)"


def cache_entries(home: Path | None = None) -> list[CacheEntry]:
    home = home or stakelearn_home()
    entries = []
    for folder in sorted(home.glob("*/.*.tmp-*")) + sorted(home.glob("circuits/*/.*.tmp-*")):
        entries.append(CacheEntry("leftover", folder, "an interrupted build or set-up", _size(folder)))
    for circuit_dir in sorted((home / "circuits").glob("[!.]*")):
        label = _label(circuit_dir)
        keys = sorted(circuit_dir.glob("keys-*"))
        compiled = sum(p.stat().st_size for p in circuit_dir.iterdir() if p.is_file())
        entries.append(CacheEntry("circuit", circuit_dir, label, compiled))
        entries += [CacheEntry("keys", k, label, _size(k)) for k in keys]
    entries += [CacheEntry("srs", p, p.name, p.stat().st_size) for p in sorted((home / "srs").glob("*.srs"))]
    shipped = sorted((home / SHIPPED).glob("[!.]*"))
    entries += [CacheEntry("shipped", p, "a chunk circuit shipped by a Ray driver", _size(p)) for p in shipped]
    return entries


def prune(home: Path | None = None, srs: bool = False) -> int:
    """Delete compiled circuits with their keys, and leftovers (and SRS files when ``srs``);
    return the bytes freed."""
    doomed = [e for e in cache_entries(home) if e.kind != "srs" or srs]
    for entry in doomed:
        if entry.kind == "keys":
            continue  # removed with its circuit folder
        if entry.path.is_dir():
            shutil.rmtree(entry.path)
        else:
            entry.path.unlink()
    return sum(e.bytes for e in doomed)
