"""`stakelearn bench --profile chunked`: what a round proven in chunks costs, measured and extrapolated.

For each chunk shape (n, C) it sets up the chunk circuit once (compile and keys, timed, in a
scratch cache of its own), then for each d proves a whole round in K = ceil(d / C) chunks
(prover.chunked_round.prove_chunked_round, one chunk at a time by default so a chunk's seconds
are one prover's) and verifies it on an EVM, the embedded one or anvil (pipeline.contracts.chunked: the chunk
proofs staged a few per transaction, then the combine proof). From the per-chunk figures of the
largest d of each shape it extrapolates to millions of coordinates on N provers.

Each job (a shape's set-up, a point) runs in its own process group under a time limit, as in
pipeline.apps.bench. Rows are appended to ``results.jsonl`` as they come; ``results.json``,
``results.md`` and ``results.png`` are written at the end.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stakelearn.circuits.chunk import chunk_count
from stakelearn.errors import StakeLearnError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.pipeline.apps.bench import MAX_INT, krum_shape, machine, run_point_process, sample_updates, use_home
from stakelearn.pipeline.apps.tables import markdown_table
from stakelearn.pipeline.contracts.chunked import CHUNKS_PER_TRANSACTION

PROFILES = {
    # n=8: C=256 and 1,024 (estimated 0.5 and 2.1 GB per prover, measured 0.7 and 1.9 GB);
    # n=16: C=64 and 128, the largest that fit 2 GB by prover.circuit.estimated_peak_mb.
    "chunked": {"shapes": [(8, 256), (8, 1024), (16, 64), (16, 128)], "d": [1024, 4096], "limit_s": 3600},
    # Under a minute: run by the test suite so the command cannot rot.
    "chunked-quick": {"shapes": [(5, 8)], "d": [24], "limit_s": 300},
}
JOB_MODULE = "stakelearn.pipeline.apps.chunked_bench"
DEFAULT_WORKERS = 1  # one chunk at a time: a chunk's seconds are one prover's, not shared cores'
EXTRAPOLATED_D = (1_000_000, 10_000_000)
EXTRAPOLATED_WORKERS = (1, 8, 64)
BLOCK_GAS_LIMIT = 30_000_000
EXTRAPOLATION_NOTE = (
    "Extrapolated, not measured: K = ceil(d / C); prove hours = (measured prove seconds per chunk) x K / N / 3600, "
    "which assumes a chunk's time does not depend on d and N provers in perfect parallel (two Ray nodes on one "
    "quiet 2-core machine measured a parallel efficiency of 0.98, docs/chunked-rounds.md); "
    "gas per epoch = (measured staging gas per chunk) x K + (measured combine gas); transactions = "
    "ceil(K / floor(30 M / gas per chunk)) staging transactions + 1 combine transaction, each within a 30 M block. "
    "Gas per chunk is measured at the run's chunks per staging transaction, so it carries a share of each "
    "transaction's fixed cost; fuller transactions would share it more widely."
)


# --- the math: pure functions ---------------------------------------------------------------


def point_figures(
    n: int, d: int, chunks: int, chunk_seconds: list[float], stage_gas: list[int], combine_gas: int
) -> dict:
    """The derived figures of one measured point: per chunk, per update element, per epoch. The
    seconds are those of the chunks this run proved (all K, unless it resumed an earlier run's);
    per element they are the timed chunks' mean per chunk over the chunk's n * C elements."""
    timed = len(chunk_seconds)
    per_chunk = sum(chunk_seconds) / timed if timed else float("nan")
    staging = sum(stage_gas)
    return {
        "chunks": chunks,
        "chunks_timed": timed,
        "chunk_prove_s_total": round(sum(chunk_seconds), 2),
        "prove_s_per_chunk": round(per_chunk, 2),
        "prove_ms_per_element": round(1000 * per_chunk * chunks / (n * d), 4),
        "stage_transactions": len(stage_gas),
        "stage_gas": staging,
        "combine_gas": combine_gas,
        "epoch_gas": staging + combine_gas,
        "gas_per_chunk": round(staging / chunks),
    }


@dataclass(frozen=True)
class Extrapolation:
    n: int
    chunk: int
    d: int
    chunks: int
    prove_hours: dict[int, float]  # by the number of provers N
    epoch_gas: int
    transactions: int


def extrapolate(
    n: int,
    chunk: int,
    d: int,
    seconds_per_chunk: float,
    gas_per_chunk: float,
    combine_gas: int,
    workers: tuple[int, ...] = EXTRAPOLATED_WORKERS,
    block_gas_limit: int = BLOCK_GAS_LIMIT,
) -> Extrapolation:
    """A round of ``d`` coordinates in chunks of ``chunk`` from one shape's per-chunk figures
    (the formula is EXTRAPOLATION_NOTE)."""
    chunks = chunk_count(d, chunk)
    chunks_per_transaction = int(block_gas_limit // gas_per_chunk)
    if chunks_per_transaction < 1:
        raise ValueError(f"a chunk's {gas_per_chunk:,.0f} gas does not fit a {block_gas_limit:,} gas block")
    return Extrapolation(
        n=n,
        chunk=chunk,
        d=d,
        chunks=chunks,
        prove_hours={w: seconds_per_chunk * chunks / w / 3600 for w in workers},
        epoch_gas=round(gas_per_chunk * chunks) + combine_gas,
        transactions=math.ceil(chunks / chunks_per_transaction) + 1,
    )


def extrapolations(points: list[dict], targets: tuple[int, ...] = EXTRAPOLATED_D) -> list[Extrapolation]:
    """Per shape (n, C), from its measured point with the most chunks, to each ``targets`` d."""
    largest: dict[tuple[int, int], dict] = {}
    for point in points:
        if point.get("status") == "ok":
            key = (point["n"], point["chunk"])
            if key not in largest or point["chunks"] > largest[key]["chunks"]:
                largest[key] = point
    return [
        extrapolate(n, chunk, d, p["prove_s_per_chunk"], p["gas_per_chunk"], p["combine_gas"])
        for (n, chunk), p in sorted(largest.items())
        for d in targets
    ]


# --- one job, in its own process ------------------------------------------------------------


def measure_chunk_setup(n: int, chunk: int, inner_cols: int) -> dict:
    """Compile and set up the chunk circuit of shape (n, C): once per shape, not per d."""
    from stakelearn.prover.chunked import ChunkCircuit
    from stakelearn.prover.circuit import estimated_peak_mb, prepare

    f, m = krum_shape(n)
    stats: dict = {}
    prepared = prepare(ChunkCircuit(n, f, m, chunk, MAX_INT, inner_cols), stats=stats)
    return {
        "rows": prepared.settings_json()["num_rows"],
        "logrows": prepared.logrows,
        "estimated_peak_mb": round(estimated_peak_mb(prepared.logrows, inner_cols)),
        **{f"{name}_s": round(step.seconds, 2) for name, step in stats.items()},
        **{f"{name}_peak_mb": round(step.peak_mb) for name, step in stats.items()},
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
    }


def measure_chunked_point(
    n: int, chunk: int, d: int, inner_cols: int, per_transaction: int, workers: int, scratch: Path, chain_kind: str
) -> dict:
    """Prove a round of ``d`` random coordinates in chunks of ``chunk`` and verify it on an EVM:
    the embedded py-evm, or a local anvil node started for the point (much faster at thousands of chunks)."""
    from stakelearn.pipeline.chain.anvil import running_anvil
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.chunked import verify_chunked_round_on_chain
    from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit
    from stakelearn.prover.chunked_round import prove_chunked_round
    from stakelearn.prover.circuit import prepare

    f, m = krum_shape(n)
    circuit = ChunkCircuit(n, f, m, chunk, MAX_INT, inner_cols)
    folder = scratch / "round"
    chunk_stats: dict = {}
    start = time.perf_counter()
    if not folder.exists():  # a kept --work folder may hold the round an earlier run finished proving
        prove_chunked_round(sample_updates(n, d), circuit, folder, workers=workers, chunk_stats=chunk_stats)
    prove_wall = time.perf_counter() - start
    start = time.perf_counter()
    if chain_kind == "anvil":
        with running_anvil() as node:
            verification = verify_chunked_round_on_chain(folder, Chain.rpc(node.url), per_transaction)
    else:
        verification = verify_chunked_round_on_chain(folder, Chain.embedded(), per_transaction)
    verify_wall = time.perf_counter() - start
    chunk_prepared = prepare(circuit)  # cached by the shape's set-up job
    combine = prepare(CombineCircuit(n, f, m, d, MAX_INT, inner_cols))  # set up by prove_chunked_round
    ordered = [chunk_stats[k] for k in sorted(chunk_stats)]
    return {
        "rows": chunk_prepared.settings_json()["num_rows"],
        "logrows": chunk_prepared.logrows,
        "combine_rows": combine.settings_json()["num_rows"],
        "combine_logrows": combine.logrows,
        **point_figures(
            n,
            d,
            chunk_count(d, chunk),
            [s.prove_seconds for s in ordered],
            verification.stage_gas,
            verification.combine_gas,
        ),
        "prove_peak_mb": round(max(s.prove_peak_mb for s in ordered)),
        "prove_wall_s": round(prove_wall, 1),
        "chain": chain_kind,
        "chain_verify_s": round(verify_wall, 1),
        "chunk_prove_s": [round(s.prove_seconds, 2) for s in ordered],
        "stage_gas_per_transaction": verification.stage_gas,
    }


def run_job(spec: dict) -> dict:
    """One job (called in the job's own process), in its shape's scratch cache."""
    use_home(Path(spec["home"]))
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


# --- reports ----------------------------------------------------------------------------------

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


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int) and abs(value) >= 1_000:
        return f"{value:,}"
    return " ".join(str(value).split()).replace("|", "/")  # one table cell


def _table(columns: list[tuple[str, str]], rows: list[dict]) -> str:
    return markdown_table([title for _, title in columns], [[_cell(r.get(key)) for key, _ in columns] for r in rows])


def shapes_table(shapes: list[dict]) -> str:
    return _table(SHAPE_COLUMNS, shapes)


def points_table(points: list[dict]) -> str:
    return _table(POINT_COLUMNS, points)


def _hours(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 1 else f"{hours:.2f}"


def extrapolation_table(rows: list[Extrapolation]) -> str:
    workers = sorted({w for row in rows for w in row.prove_hours})
    header = ["n", "C", "d", "K", *(f"prove h, N={w}" for w in workers), "gas/epoch", "txs (≤ 30 M gas)"]
    body = [
        [r.n, f"{r.chunk:,}", f"{r.d:,}", f"{r.chunks:,}", *(_hours(r.prove_hours[w]) for w in workers)]
        + [f"{r.epoch_gas / 1e6:,.0f} M", f"{r.transactions:,}"]
        for r in rows
    ]
    return markdown_table(header, body)


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    shapes: dict[tuple[int, int], list[dict]] = {}
    for point in points:
        if point.get("status") == "ok":
            shapes.setdefault((point["n"], point["chunk"]), []).append(point)
    for (n, chunk), items in sorted(shapes.items()):
        items.sort(key=lambda p: p["d"])
        d = [p["d"] for p in items]
        label = f"n={n}, C={chunk}"
        left.plot(d, [p["chunk_prove_s_total"] for p in items], "o-", label=label)
        right.plot(d, [p["epoch_gas"] for p in items], "o-", label=label)
    for axis, title in (
        (left, "prove seconds (all chunks, one prover)"),
        (right, "verification gas per epoch (staging + combine)"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("update length d")
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# Other work on the machine above this many cores inflates the seconds measured (not the gas).
SHARED_CORES = 0.5


def others_cores(machine_busy_s: float, ours_s: float, wall_s: float) -> float:
    """The cores other processes kept busy over ``wall_s``: the machine's busy CPU seconds less ours."""
    return max(0.0, (machine_busy_s - ours_s) / wall_s) if wall_s > 0 else 0.0


def cpu_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat; 0 where there is none)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def our_cpu_seconds() -> float:
    """CPU seconds of this process and of every descendant it (and they) waited for: a job's whole tree."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class SharingMonitor:
    """How much of the machine other jobs took while ours ran. A load average counts our own
    prover too, so only the one taken before the run says whether others were at work; during a
    job, the machine's busy CPU time less our process tree's is theirs."""

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self.load_before = os.getloadavg()[0]
        self.per_job: list[float] = []
        if self.load_before > SHARED_CORES * self.cores:
            _say(
                f"bench: load average {self.load_before:.1f} on {self.cores} cores before the run: other jobs are running"
            )
        self._start()

    def _start(self) -> None:
        self._busy, self._ours, self._wall = cpu_busy_seconds(), our_cpu_seconds(), time.perf_counter()

    def job_done(self) -> float:
        """The cores other processes used since the last job ended, said when it inflates seconds."""
        busy, ours, wall = cpu_busy_seconds(), our_cpu_seconds(), time.perf_counter()
        others = round(others_cores(busy - self._busy, ours - self._ours, wall - self._wall), 2)
        self.per_job.append(others)
        if others > SHARED_CORES:
            _say(
                f"bench: other processes used {others:.1f} of {self.cores} cores during that job: its seconds are inflated"
            )
        self._start()
        return others

    def summary(self) -> dict:
        return {
            "cores": self.cores,
            "load_average_before": round(self.load_before, 2),
            "others_cores_max": max(self.per_job, default=0.0),
            "others_cores_per_job": self.per_job,
        }


def sharing_note(sharing: dict) -> str | None:
    """A line for the report when other work shared the machine: seconds are then inflated (gas is not)."""
    cores, before, others = sharing["cores"], sharing["load_average_before"], sharing["others_cores_max"]
    if before <= SHARED_CORES * cores and others <= SHARED_CORES:
        return None
    return (
        f"other jobs shared the machine (load average {before:.1f} on {cores} cores before the run; other processes "
        f"took up to {others:.1f} cores during a job): seconds are inflated, gas is not"
    )


# --- the driver ---------------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
) -> dict:
    profile = "chunked-quick" if quick else "chunked"
    spec = PROFILES[profile]
    ds = sorted(set(d_values or spec["d"]))
    wanted_shapes = shapes_wanted or spec["shapes"]
    limit = limit_s or spec["limit_s"]
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "results.jsonl"
    journal.unlink(missing_ok=True)
    # ours alone, removed at the end; or the --work folder, kept, whose proven chunks a new run resumes
    scratch_root = work if work is not None else Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))
    shapes, points = [], []
    sharing = SharingMonitor()
    common = {
        "inner_cols": inner_cols,
        "per_transaction": per_transaction,
        "workers": workers,
        "chain": chain_kind,
        "keep": work is not None,
    }
    try:
        for n, chunk in wanted_shapes:
            home = scratch_root / f"home-{n}x{chunk}"  # the shape's keys, shared by its points
            _say(f"bench: chunked n={n} C={chunk}: compile and set up the chunk circuit")
            job = {"job": "setup", "n": n, "chunk": chunk, "home": str(home), **common}
            shape = {"n": n, "chunk": chunk, **run_point_process(job, limit, JOB_MODULE)}
            shape["others_cores"] = sharing.job_done()
            shapes.append(shape)
            _append(journal, {"kind": "shape", **shape})
            print(shapes_table([shape]).splitlines()[-1], flush=True)
            for d in ds:
                _say(f"bench: chunked n={n} C={chunk} d={d}: {chunk_count(d, chunk)} chunks")
                job = {"job": "point", "n": n, "chunk": chunk, "d": d, "home": str(home), **common}
                job["scratch"] = str(scratch_root / f"point-{n}x{chunk}x{d}")
                start = time.perf_counter()
                if shape["status"] == "ok":
                    measured = run_point_process(job, limit, JOB_MODULE)
                else:
                    measured = {"status": "skipped: the set-up failed"}
                point = {"n": n, "chunk": chunk, "d": d, **measured, "wall_s": round(time.perf_counter() - start, 1)}
                point["others_cores"] = sharing.job_done()
                points.append(point)
                _append(journal, {"kind": "point", **point})
                print(points_table([point]).splitlines()[-1], flush=True)
    finally:
        if work is None:
            shutil.rmtree(scratch_root, ignore_errors=True)
    extrapolated = extrapolations(points)
    results = {
        "profile": profile,
        "machine": machine(),
        "max_int": MAX_INT,
        **common,
        "sharing": sharing.summary(),
        "shapes": shapes,
        "points": points,
        "extrapolation": {
            "note": EXTRAPOLATION_NOTE,
            "block_gas_limit": BLOCK_GAS_LIMIT,
            "rows": [asdict(row) for row in extrapolated],
        },
    }
    write_json_atomic(out / "results.json", results)
    report = report_lines(results, extrapolated)
    write_bytes_atomic(out / "results.md", ("\n".join(report) + "\n").encode())
    plot(points, out / "results.png")
    print("\n".join(report))
    return results


def report_lines(results: dict, extrapolated: list[Extrapolation]) -> list[str]:
    lines = [
        f"Chunk circuits, set up once per shape (n, C) ({results['inner_cols']} cells per row, max_int {MAX_INT}):",
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
    if note:
        lines.append(note)
    return lines


def _append(journal: Path, row: dict) -> None:
    with journal.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    # One job, in its own process: print its measurements as the last line of stdout.
    print(json.dumps(run_job(json.loads(sys.argv[1]))), flush=True)
