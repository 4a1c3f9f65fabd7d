"""`stakelearn bench --profile chunked`: what a round proven in chunks costs, measured and extrapolated.

For each chunk shape (n, C) it sets up the chunk circuit once (compile and keys, timed, in a
scratch cache of its own), then for each d proves a whole round in K = ceil(d / C) chunks
(prover.chunked_round.prove_chunked_round, one chunk at a time by default so a chunk's seconds
are one prover's) and verifies it on an EVM, the embedded one or anvil (pipeline.contracts.chunked: the chunk
proofs staged a few per transaction, then the combine proof). From the per-chunk figures of the
largest d of each shape it extrapolates to millions of coordinates on N provers
(experiments.bench.extrapolation).

Each job (a shape's set-up, a point) is a job of the harness (its own process group under a time
limit). Rows are appended to ``results.jsonl`` as they come; ``results.json``, ``results.md``
and ``results.png`` are written at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from stakelearn.circuits.chunk import chunk_count
from stakelearn.errors import ProofError, StakeLearnError
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION
from stakelearn.pipeline.experiments.bench import harness
from stakelearn.pipeline.experiments.bench.extrapolation import (
    BLOCK_GAS_LIMIT,
    EXTRAPOLATION_NOTE,
    Extrapolation,
    extrapolation_table,
    extrapolations,
    point_figures,
)
from stakelearn.pipeline.experiments.bench.sharing import SharingMonitor, sharing_note

log = logging.getLogger(__name__)

PROFILES = {
    # n=8: C=256 and 1,024 (estimated 0.5 and 2.1 GB per prover, measured 0.7 and 1.9 GB);
    # n=16: C=64 and 128, the largest that fit 2 GB by prover.circuit.estimated_peak_mb.
    "chunked": {"shapes": [(8, 256), (8, 1024), (16, 64), (16, 128)], "d": [1024, 4096], "limit_s": 3600},
    # Under a minute: run by the test suite so the command cannot rot.
    "chunked-quick": {"shapes": [(5, 8)], "d": [24], "limit_s": 300},
}
DEFAULT_WORKERS = 1  # one chunk at a time: a chunk's seconds are one prover's, not shared cores'

SHAPE_COLUMNS = [
    ("n", "n"),
    ("chunk", "C"),
    ("rows", "chunk rows"),
    ("logrows", "k"),
    ("compile_s", "compile s"),
    ("setup_s", "setup s"),
    ("setup_peak_mb", "setup MB"),
    ("estimated_peak_mb", "estimated MB"),
    ("pk_mb", "pk MB"),
    ("status", "status"),
]
POINT_COLUMNS = [
    ("n", "n"),
    ("chunk", "C"),
    ("d", "d"),
    ("chunks", "K"),
    ("chunks_timed", "K timed"),
    ("rows", "chunk rows"),
    ("logrows", "k"),
    ("combine_rows", "combine rows"),
    ("prove_s_per_chunk", "prove s/chunk"),
    ("prove_ms_per_element", "prove ms/elt"),
    ("prove_peak_mb", "prove MB"),
    ("stage_transactions", "staging txs"),
    ("stage_gas", "staging gas"),
    ("gas_per_chunk", "gas/chunk"),
    ("combine_gas", "combine gas"),
    ("epoch_gas", "gas/epoch"),
    ("prove_wall_s", "prove wall s"),
    ("chain_verify_s", "EVM s"),
    ("wall_s", "wall s"),
    ("status", "status"),
]


# --- the report: pure functions -------------------------------------------------------------


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int) and abs(value) >= 1_000:
        return f"{value:,}"
    return " ".join(str(value).split()).replace("|", "/")  # one table cell


def shapes_table(shapes: list[dict]) -> str:
    return harness.columns_table(SHAPE_COLUMNS, shapes, _cell)


def points_table(points: list[dict]) -> str:
    return harness.columns_table(POINT_COLUMNS, points, _cell)


def report(results: dict, extrapolated: list[Extrapolation]) -> str:
    lines = [
        f"Chunk circuits, set up once per shape (n, C) ({results['inner_cols']} cells per row, max_int {results['max_int']}):",
        "",
        shapes_table(results["shapes"]),
        "",
        f"Rounds proven in chunks ({results['workers']} prover(s) at a time), verified on {results['chain']} "
        f"({results['per_transaction']} chunk proofs per staging transaction):",
        "",
        points_table(results["points"]),
        "",
        "**Extrapolated** from each shape's largest measured d:",
        "",
        extrapolation_table(extrapolated),
        "",
        EXTRAPOLATION_NOTE,
        "",
        "machine: " + json.dumps(results["machine"]),
    ]
    note = sharing_note(results["sharing"])
    return "\n".join(lines + ([note] if note else []))


def figure(points: list[dict]) -> harness.Figure:
    """Prove seconds (all chunks, one prover) and gas per epoch against d, a line per shape (n, C)."""
    shapes: dict[tuple[int, int], list[dict]] = {}
    for point in points:
        if point.get("status") == "ok":
            shapes.setdefault((point["n"], point["chunk"]), []).append(point)
    series = []
    for (n, chunk), unordered in sorted(shapes.items()):
        items = sorted(unordered, key=lambda p: p["d"])
        left, right = [p["chunk_prove_s_total"] for p in items], [p["epoch_gas"] for p in items]
        series.append(harness.Series(f"n={n}, C={chunk}", "o-", [p["d"] for p in items], left, right))
    titles = ("prove seconds (all chunks, one prover)", "verification gas per epoch (staging + combine)")
    return harness.Figure(series, titles, "update length d", title_size=10)


# --- one job, in its own process ------------------------------------------------------------


def measure_chunk_setup(n: int, chunk: int, inner_cols: int) -> dict:
    """Compile and set up the chunk circuit of shape (n, C): once per shape, not per d."""
    from stakelearn.prover.chunked import ChunkCircuit
    from stakelearn.prover.circuit import estimated_peak_mb, prepare

    f, m = harness.krum_shape(n)
    stats: dict = {}
    prepared = prepare(ChunkCircuit(n, f, m, chunk, harness.MAX_INT, inner_cols), stats=stats)
    return {
        "rows": prepared.settings_json()["num_rows"],
        "logrows": prepared.logrows,
        "estimated_peak_mb": round(estimated_peak_mb(prepared.logrows, inner_cols)),
        **harness.step_columns(stats),
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
    }


def measure_chunked_point(
    n: int, chunk: int, d: int, inner_cols: int, per_transaction: int, workers: int, scratch: Path, chain_kind: str
) -> dict:
    """Prove a round of ``d`` random coordinates in chunks of ``chunk`` and verify it on an EVM:
    the embedded py-evm, or a local anvil node started for the point (much faster at thousands of chunks)."""
    from stakelearn.pipeline.chain.anvil import running_anvil
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.round_on_chain import verify_round_on_chain
    from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit
    from stakelearn.prover.chunked_round import prove_chunked_round
    from stakelearn.prover.circuit import prepare

    f, m = harness.krum_shape(n)
    circuit = ChunkCircuit(n, f, m, chunk, harness.MAX_INT, inner_cols)
    folder = scratch / "round"
    chunk_stats: dict = {}
    start = time.perf_counter()
    if not folder.exists():  # a kept --work folder may hold the round an earlier run finished proving
        updates = harness.sample_updates(n, d)
        prove_chunked_round(updates, circuit, folder, workers=workers, chunk_stats=chunk_stats)
    prove_wall = time.perf_counter() - start
    start = time.perf_counter()
    if chain_kind == "anvil":
        with running_anvil() as node:
            verification = verify_round_on_chain(folder, Chain.rpc(node.url), per_transaction=per_transaction)
    else:
        verification = verify_round_on_chain(folder, Chain.embedded(), per_transaction=per_transaction)
    if not verification.ok:
        raise ProofError(f"the EVM refuses the chunked round: {verification.reason}")
    verify_wall = time.perf_counter() - start
    chunk_prepared = prepare(circuit)  # cached by the shape's set-up job
    combine = prepare(CombineCircuit(n, f, m, d, harness.MAX_INT, inner_cols))  # set up by prove_chunked_round
    ordered = [chunk_stats[k] for k in sorted(chunk_stats)]
    seconds = [s.prove_seconds for s in ordered]
    return {
        "rows": chunk_prepared.settings_json()["num_rows"],
        "logrows": chunk_prepared.logrows,
        "combine_rows": combine.settings_json()["num_rows"],
        "combine_logrows": combine.logrows,
        **point_figures(n, d, chunk_count(d, chunk), seconds, verification.stage_gas, verification.gas_used),
        "prove_peak_mb": round(max(s.prove_peak_mb for s in ordered)),
        "prove_wall_s": round(prove_wall, 1),
        "chain": chain_kind,
        "chain_verify_s": round(verify_wall, 1),
        "chunk_prove_s": [round(s, 2) for s in seconds],
        "stage_gas_per_transaction": verification.stage_gas,
    }


def run_job(spec: dict) -> dict:
    """One job (called in the job's own process), in its shape's scratch cache."""
    harness.use_home(Path(spec["home"]))
    try:
        if spec["job"] == "setup":
            return measure_chunk_setup(spec["n"], spec["chunk"], spec["inner_cols"])
        args = (spec["n"], spec["chunk"], spec["d"], spec["inner_cols"], spec["per_transaction"], spec["workers"])
        return measure_chunked_point(*args, Path(spec["scratch"]), spec["chain"])
    except StakeLearnError as error:  # recorded with its reason: the other points still run
        return {"status": f"failed: {error}"}
    finally:
        if "scratch" in spec and not spec["keep"]:
            shutil.rmtree(spec["scratch"], ignore_errors=True)


# --- the driver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Jobs:
    """The run's jobs: each in its own process under the limit, with the machine's other work
    measured beside it, and journaled as it ends."""

    common: dict  # the options every job takes
    limit_s: float
    sharing: SharingMonitor
    journal: harness.Journal

    def shape(self, n: int, chunk: int, home: Path) -> dict:
        log.info(f"bench: chunked n={n} C={chunk}: compile and set up the chunk circuit")
        job = {"job": "setup", "n": n, "chunk": chunk, "home": str(home), **self.common}
        shape = {"n": n, "chunk": chunk, **harness.run_job_process(job, self.limit_s, __name__)}
        shape["others_cores"] = self.sharing.job_done()
        self.journal.record({"kind": "shape", **shape}, harness.table_line(SHAPE_COLUMNS, shape, _cell))
        return shape

    def point(self, shape: dict, d: int, home: Path, scratch: Path) -> dict:
        n, chunk = shape["n"], shape["chunk"]
        log.info(f"bench: chunked n={n} C={chunk} d={d}: {chunk_count(d, chunk)} chunks")
        job = {"job": "point", "n": n, "chunk": chunk, "d": d, "home": str(home), **self.common}
        job["scratch"] = str(scratch)
        start = time.perf_counter()
        if shape["status"] == "ok":
            measured = harness.run_job_process(job, self.limit_s, __name__)
        else:
            measured = {"status": "skipped: the set-up failed"}
        point = {"n": n, "chunk": chunk, "d": d, **measured, "wall_s": round(time.perf_counter() - start, 1)}
        point["others_cores"] = self.sharing.job_done()
        self.journal.record({"kind": "point", **point}, harness.table_line(POINT_COLUMNS, point, _cell))
        return point


def run_chunked_bench(
    out: Path,
    *,
    quick: bool = False,
    d_values: list[int] | None = None,
    per_transaction: int = CHUNKS_PER_TRANSACTION,
    workers: int = DEFAULT_WORKERS,
    limit_s: float | None = None,
    inner_cols: int = 8,
    shapes_wanted: list[tuple[int, int]] | None = None,
    chain_kind: str = "embedded",
    work: Path | None = None,
    show: Callable[[str], None] = log.info,
) -> harness.Outcome:
    """Measure the chunked profile into ``out``; ``show`` is told each job's table row as it ends.
    ``work`` keeps the keys and the proven chunks there, and a new run resumes them."""
    profile = "chunked-quick" if quick else "chunked"
    spec = PROFILES[profile]
    common = {
        "inner_cols": inner_cols,
        "per_transaction": per_transaction,
        "workers": workers,
        "chain": chain_kind,
        "keep": work is not None,
    }
    journal = harness.Journal(out, show)
    shapes, points = [], []
    with harness.scratch_folder(out, work) as scratch_root:
        jobs = _Jobs(common, limit_s or spec["limit_s"], SharingMonitor(), journal)
        for n, chunk in shapes_wanted or spec["shapes"]:
            home = scratch_root / f"home-{n}x{chunk}"  # the shape's keys, shared by its points
            shapes.append(jobs.shape(n, chunk, home))
            for d in sorted(set(d_values or spec["d"])):
                points.append(jobs.point(shapes[-1], d, home, scratch_root / f"point-{n}x{chunk}x{d}"))
    extrapolated = extrapolations(points)
    results = {
        "profile": profile,
        "machine": harness.machine(),
        "max_int": harness.MAX_INT,
        **common,
        "sharing": jobs.sharing.summary(),
        "shapes": shapes,
        "points": points,
        "extrapolation": {
            "note": EXTRAPOLATION_NOTE,
            "block_gas_limit": BLOCK_GAS_LIMIT,
            "rows": [asdict(row) for row in extrapolated],
        },
    }
    text = report(results, extrapolated)
    harness.write_results(out, results, text, figure(points))
    return harness.Outcome(results, text, shapes + points)


if __name__ == "__main__":
    harness.job_main(run_job)
