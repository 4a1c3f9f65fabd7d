"""What every bench profile runs on: the machine's description, the sample updates, one job per
process under a time limit, the run's out folder (the journal ``results.jsonl``, the scratch
folder, ``results.json``, ``results.md`` and ``results.png``), the tables and the plot's axes.

A job is one measurement (a point, a shape's set-up) in its own process group: a job over the
limit is recorded as such instead of hanging, a crash loses only that job, and every step inside
runs in its own child so its peak memory is its own. The job's process is ``python -m <the
profile's module> '<spec as JSON>'`` (:func:`job_main`), which prints its figures as JSON on the
last line of its stdout.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.quantize import FixedPoint
from stakelearn.tables import markdown_table

log = logging.getLogger(__name__)

MAX_INT = FixedPoint().max_int  # the default fixed point: scale 2^-7, clip 1.0, so 128

Columns = list[tuple[str, str]]  # (a row's key, the column's title)


# --- the math: pure functions ---------------------------------------------------------------


def krum_shape(n: int) -> tuple[int, int]:
    """The largest f Krum allows for n clients, and m = n - f."""
    f = (n - 3) // 2
    return f, n - f


def sample_updates(n: int, d: int) -> np.ndarray:
    """The point's updates: random, in the fixed point's range, the same for the same (n, d)."""
    return np.random.default_rng(n * 100_003 + d).integers(-MAX_INT, MAX_INT + 1, size=(n, d))


def step_columns(stats: dict) -> dict:
    """``<step>_s`` and ``<step>_peak_mb`` for each measured step (prover.isolate's stats)."""
    return {
        **{f"{name}_s": round(step.seconds, 2) for name, step in stats.items()},
        **{f"{name}_peak_mb": round(step.peak_mb) for name, step in stats.items()},
    }


def columns_table(columns: Columns, rows: list[dict], cell: Callable[[object], object] = lambda value: value) -> str:
    """A markdown table of ``rows`` by ``columns``; a row without a key has an empty cell."""
    return markdown_table(
        [title for _, title in columns], [[cell(row.get(key, "")) for key, _ in columns] for row in rows]
    )


def table_line(columns: Columns, row: dict, cell: Callable[[object], object] = lambda value: value) -> str:
    """The progress line of a finished job: its row of the table."""
    return columns_table(columns, [row], cell).splitlines()[-1]


@dataclass(frozen=True)
class Series:
    """One line on both panels of a profile's figure: the same x, a y on each panel."""

    label: str
    style: str  # matplotlib's format string, e.g. "o-"
    x: list[float]
    left: list[float]
    right: list[float]


@dataclass(frozen=True)
class Figure:
    """A profile's two log-log panels."""

    series: list[Series]
    titles: tuple[str, str]
    xlabel: str
    title_size: float | None = None  # None: matplotlib's title size


@dataclass(frozen=True)
class Outcome:
    """What a profile's run measured: ``results.json``'s content, ``results.md``'s text, and every
    job's row (each with its status)."""

    results: dict
    report: str
    rows: list[dict]


# --- the machine ----------------------------------------------------------------------------


def machine() -> dict:
    import ezkl

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_gb, 1), "ezkl": ezkl.__version__}


# --- one job, in its own process ------------------------------------------------------------


def use_home(home: Path) -> None:
    """Compile and set up afresh in the scratch cache ``home`` (they are measured), but share the
    user's SRS files: generating an SRS is not part of proving a round."""
    from stakelearn.prover.srs import stakelearn_home

    srs_cache = stakelearn_home() / "srs"
    srs_cache.mkdir(parents=True, exist_ok=True)
    if not (home / "srs").exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "srs").symlink_to(srs_cache.resolve())
    os.environ["STAKELEARN_HOME"] = str(home)


def run_job_process(spec: dict, limit_s: float, module: str) -> dict:
    """Run one job in a new process group (``python -m module spec``, which prints its figures as
    JSON on its last line); kill the group at the time limit."""
    command = [sys.executable, "-m", module, json.dumps(spec)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True, text=True)
    try:
        out, _ = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"status": f"over the {limit_s:.0f} s limit"}
    if process.returncode != 0:
        return {"status": f"failed (exit {process.returncode})"}
    return {"status": "ok", **json.loads(out.strip().splitlines()[-1])}


def job_main(run_job: Callable[[dict], dict]) -> None:
    """The job's own process: run the spec given as the first argument, print its measurements as
    the last line of stdout (progress goes to stderr)."""
    from stakelearn.progress import show_progress

    show_progress()
    measured = run_job(json.loads(sys.argv[1]))
    print(json.dumps(measured), flush=True)


# --- the run's out folder -------------------------------------------------------------------


class Journal:
    """``results.jsonl`` in the out folder: emptied when a run starts, a row appended as each job
    ends (a run stopped halfway keeps what it measured); each row's progress line is shown."""

    def __init__(self, out: Path, show: Callable[[str], None]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.jsonl"
        self.path.unlink(missing_ok=True)
        self.show = show

    def record(self, row: dict, line: str) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.show(line)


@contextmanager
def scratch_folder(out: Path, work: Path | None = None) -> Iterator[Path]:
    """The jobs' scratch folder: a new one inside ``out``, ours alone, removed at the end; or the
    ``work`` folder, kept, whose proven chunks a new run resumes."""
    folder = work if work is not None else Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))
    try:
        yield folder
    finally:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)


def write_results(out: Path, results: dict, report: str, figure: Figure) -> None:
    """The run's results: ``results.json`` (the figures), ``results.md`` (the report), ``results.png``."""
    write_json_atomic(out / "results.json", results)
    write_bytes_atomic(out / "results.md", (report + "\n").encode())
    plot(figure, out / "results.png")


def plot(figure: Figure, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canvas, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for series in figure.series:
        left.plot(series.x, series.left, series.style, label=series.label)
        right.plot(series.x, series.right, series.style, label=series.label)
    for axis, title in zip((left, right), figure.titles, strict=True):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(figure.xlabel)
        axis.set_title(title, **({} if figure.title_size is None else {"fontsize": figure.title_size}))
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    canvas.tight_layout()
    canvas.savefig(path, dpi=110)
    plt.close(canvas)
