"""The aggregator's persistent store for the MPS rollup (SQLite, standard library).

Each epoch moves through stages, and each stage is committed in one SQLite transaction after
the files it names are written (atomically), so a killed aggregator restarts at the stage it
last completed:

    collected  the n signed updates are checked and stored (files + commitments + signatures)
    proven     the round proof folder exists
    submitted  the round is on chain (tx hash, gas); the chain is asked before any resubmission
    finalized  the next global model is stored with its test accuracy
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from stakelearn.errors import StakeLearnError

STAGES = ("collected", "proven", "submitted", "finalized")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    model_before TEXT NOT NULL,
    round_dir TEXT,
    prove_seconds REAL,
    scores TEXT,
    selected TEXT,
    tx_hash TEXT,
    gas_used INTEGER,
    flagged TEXT,
    slashed TEXT,
    model_after TEXT,
    accuracy REAL
);
CREATE TABLE IF NOT EXISTS updates (
    epoch INTEGER NOT NULL,
    client INTEGER NOT NULL,
    address TEXT NOT NULL,
    path TEXT NOT NULL,
    commitment TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (epoch, client)
);
"""


@dataclass(frozen=True)
class StoredUpdate:
    client: int
    address: str
    path: str
    commitment: str  # hex
    signature: str  # hex


class SequencerStore:
    """Epochs, commitments, update locations, proofs and transaction hashes of one task.
    Paths are stored relative to the store's folder, so a run folder can be moved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent
        self._db = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        """Run ``statements`` as one transaction: all land or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                self._db.execute(sql, args)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # --- meta -----------------------------------------------------------------------------
    def set_meta(self, **values: object) -> None:
        self._write([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v))) for k, v in values.items()])

    def meta(self, key: str, default: object = None) -> object:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # --- epochs ---------------------------------------------------------------------------
    def epoch(self, epoch: int) -> dict | None:
        row = self._db.execute("SELECT * FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
        if row is None:
            return None
        record = dict(row)
        for key in ("scores", "selected", "flagged", "slashed"):
            record[key] = json.loads(record[key]) if record[key] is not None else None
        return record

    def epochs(self) -> list[dict]:
        return [self.epoch(row["epoch"]) for row in self._db.execute("SELECT epoch FROM epochs ORDER BY epoch")]

    def stage(self, epoch: int) -> str | None:
        record = self.epoch(epoch)
        return record["stage"] if record else None

    def record_collected(self, epoch: int, model_before: Path, updates: list[StoredUpdate]) -> None:
        statements = [
            (
                "INSERT INTO epochs (epoch, stage, model_before) VALUES (?, 'collected', ?)",
                (epoch, self.relative(model_before)),
            )
        ]
        statements += [
            (
                "INSERT INTO updates VALUES (?, ?, ?, ?, ?, ?)",
                (epoch, u.client, u.address, u.path, u.commitment, u.signature),
            )
            for u in updates
        ]
        self._write(statements)

    def record_proven(
        self, epoch: int, round_dir: Path, prove_seconds: float | None, scores: list[int], selected: list[int]
    ) -> None:
        self._advance(
            epoch,
            "collected",
            "proven",
            round_dir=self.relative(round_dir),
            prove_seconds=prove_seconds,
            scores=json.dumps([str(s) for s in scores]),
            selected=json.dumps(selected),
        )

    def record_submitted(self, epoch: int, tx_hash: str, gas_used: int, flagged: list[int], slashed: list[int]) -> None:
        self._advance(
            epoch,
            "proven",
            "submitted",
            tx_hash=tx_hash,
            gas_used=gas_used,
            flagged=json.dumps(flagged),
            slashed=json.dumps(slashed),
        )

    def record_finalized(self, epoch: int, model_after: Path, accuracy: float) -> None:
        self._advance(epoch, "submitted", "finalized", model_after=self.relative(model_after), accuracy=accuracy)

    def _advance(self, epoch: int, from_stage: str, to_stage: str, **columns: object) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self._write(
            [
                (
                    f"UPDATE epochs SET stage = ?, {assignments} WHERE epoch = ? AND stage = ?",
                    (to_stage, *columns.values(), epoch, from_stage),
                )
            ]
        )
        if self.stage(epoch) != to_stage:
            raise StakeLearnError(f"epoch {epoch} was not at stage '{from_stage}'; the store is inconsistent")

    # --- updates --------------------------------------------------------------------------
    def updates(self, epoch: int) -> list[StoredUpdate]:
        rows = self._db.execute("SELECT * FROM updates WHERE epoch = ? ORDER BY client", (epoch,))
        return [StoredUpdate(r["client"], r["address"], r["path"], r["commitment"], r["signature"]) for r in rows]

    def resolve(self, relative: str) -> Path:
        """The location of a path read from the store. The store is a file anyone may hand over
        (to audit it, to resume a run), so a path that is absolute or that leads, symlinks
        followed, anywhere but inside the store's folder is refused rather than read."""
        root = self.root.resolve()
        try:
            path = self.root / relative
            target = path.resolve()
            inside = not Path(relative).is_absolute() and target != root and target.is_relative_to(root)
        except (TypeError, ValueError, OSError, RuntimeError):  # not a path, a NUL byte, a symlink loop
            inside = False
        if not inside:
            raise StakeLearnError(
                f"the store names {relative!r}, which is outside the run folder {root}; "
                "a stored path must lie inside it (the store may have been tampered with)"
            )
        return path

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(self.root.resolve()))
