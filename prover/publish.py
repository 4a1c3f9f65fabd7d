"""Publishing entries into the key cache (``$STAKELEARN_HOME``): the one place that does it.

An entry (a compiled circuit's folder, a key set-up's folder, a node's copy of shipped circuit
files, an SRS file) is built under a temporary name beside its final one and published by one
rename (a folder) or one hard link (a file), so no reader ever sees half of one and nothing
published is ever overwritten. Two processes sharing one cache (two ``stakelearn prove`` runs of
the same shape started together) may build the same entry at once; the second to publish finds
the first's finished entry in place. That entry counts as a hit, as in pip's and ccache's caches:
its files are checked against the SHA-256 digests its builder recorded in ``entry.sha256`` (the
format of ``sha256sum``), the second build is discarded, and both processes go on with the first's
(two builds of one circuit are not identical under ezkl 23, so everyone must use the same one).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stakelearn.errors import ArtifactError

DIGESTS = "entry.sha256"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_digests(folder: Path) -> None:
    """Write ``folder/entry.sha256``: the SHA-256 of every file under ``folder``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS)
    lines = [f"{_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files]
    (folder / DIGESTS).write_text("".join(lines))


def check_entry(folder: Path) -> None:
    """A finished entry another process published: every file its builder recorded is there
    with its recorded digest; else ArtifactError naming the entry."""
    damaged = f"the cache entry {folder} is damaged or incomplete"
    remedy = "remove it (`stakelearn cache --prune`) and run again"
    try:
        lines = (folder / DIGESTS).read_text().splitlines()
    except OSError:
        raise ArtifactError(f"{damaged} (no {DIGESTS}: not written by this version); {remedy}") from None
    if not lines:
        raise ArtifactError(f"{damaged} ({DIGESTS} is empty); {remedy}")
    for line in lines:
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file() or path.is_symlink() or _sha256(path) != digest:
            raise ArtifactError(f"{damaged} ({name} is not the file its builder recorded); {remedy}")


@contextmanager
def publishing(final: Path) -> Iterator[Path]:
    """Yield a new temporary folder beside ``final``; when the block ends without an error,
    record its files' digests and rename it to ``final``. If another process published
    ``final`` meanwhile, its entry is checked (:func:`check_entry`) and kept, and this one is
    discarded. On an error in the block, the temporary folder is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        yield tmp
        record_digests(tmp)
        try:
            os.rename(tmp, final)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
            check_entry(final)  # another process's finished entry: a hit
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing is left there after the rename


def publish_file(tmp: Path, final: Path, same_kind: Callable[[Path, Path], bool]) -> None:
    """Publish the finished file ``tmp`` as ``final`` by a hard link, which never replaces a
    file: if another process published ``final`` first, it is kept when ``same_kind(final, tmp)``
    (else ArtifactError), and ``tmp`` is discarded either way."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        if not final.is_file() or final.is_symlink() or not same_kind(final, tmp):
            raise ArtifactError(
                f"the cache entry {final} is damaged or incomplete; remove it (`stakelearn cache --prune --srs`) "
                "and run again"
            ) from None
    finally:
        tmp.unlink(missing_ok=True)
