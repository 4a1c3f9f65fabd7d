"""`stakelearn bench`: measure the proven round at several (n, d) points and layouts.

For each point it prints and saves: circuit rows, logrows, rows per update element (n*d),
compile/setup/prove/verify seconds and peak memory (each step in its own process), proving
key and proof size, the gas of verifying the round on the embedded EVM, and the plain numpy
Krum time, so that ratios can be compared across machines. Keys are set up afresh for every
point (in a scratch cache under --out); SRS files are reused from the user's cache.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import krum_round
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.pipeline.chain import Chain
from stakelearn.pipeline.evm_verify import deploy_round_verifier, verify_on_chain
from stakelearn.prover import steps
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.isolate import run_isolated
from stakelearn.prover.round import COMMITMENTS, prove_round
from stakelearn.prover.srs import stakelearn_home

MAX_INT = 128  # scale 2^-7, clip 1.0: the default fixed point


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_gb, 1), "ezkl": steps.EZKL_VERSION}


def krum_shape(n: int) -> tuple[int, int]:
    """The largest f Krum allows for n clients, and m = n - f."""
    f = (n - 3) // 2
    return f, n - f


def bench_point(n: int, d: int, inner_cols: int, scratch: Path, evm: bool) -> dict:
    f, m = krum_shape(n)
    circuit = RoundCircuit(n=n, f=f, m=m, d=d, max_int=MAX_INT, num_inner_cols=inner_cols)
    updates = np.random.default_rng(n * 100_003 + d).integers(-MAX_INT, MAX_INT + 1, size=(n, d))
    shutil.rmtree(scratch / "circuits", ignore_errors=True)
    stats = {}
    round_dir = scratch / f"round-{n}x{d}-c{inner_cols}"
    shutil.rmtree(round_dir, ignore_errors=True)
    prove_round(updates, circuit, round_dir, stats=stats)
    prepared = prepare(circuit)
    _, stats["verify"] = run_isolated(
        "verifying", steps.verify, round_dir / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path
    )
    settings = prepared.settings_json()
    start = time.perf_counter()
    krum_round(updates, circuit.params)
    numpy_seconds = time.perf_counter() - start
    row = {
        "n": n, "d": d, "f": f, "m": m, "inner_cols": inner_cols,
        "rows": settings["num_rows"], "logrows": prepared.logrows,
        "rows_per_element": round(settings["num_rows"] / (n * d), 3),
        **{f"{step}_s": round(s.seconds, 2) for step, s in stats.items()},
        **{f"{step}_peak_mb": round(s.peak_mb) for step, s in stats.items()},
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads((round_dir / steps.PROOF).read_text())["proof"]),
        "numpy_krum_s": round(numpy_seconds, 5),
    }
    if evm:
        commitments = json.loads((round_dir / COMMITMENTS).read_text())
        deployed = deploy_round_verifier(Chain.embedded(), prepared)
        result = verify_on_chain(deployed, round_dir / steps.PROOF, prepared.vka, [*commitments["updates"], commitments["aggregate"]])
        row["evm_verify_gas"] = result.gas_used if result.ok else None
    shutil.rmtree(round_dir)
    return row


COLUMNS = [
    ("n", "n"), ("d", "d"), ("inner_cols", "cols"), ("rows", "rows"), ("logrows", "k"),
    ("rows_per_element", "rows/elt"), ("setup_s", "setup s"), ("setup_peak_mb", "setup MB"),
    ("prove_s", "prove s"), ("prove_peak_mb", "prove MB"), ("verify_s", "verify s"),
    ("pk_mb", "pk MB"), ("proof_bytes", "proof B"), ("evm_verify_gas", "EVM gas"), ("numpy_krum_s", "numpy s"),
]


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def run_bench(points: list[tuple[int, int]], inner_cols: list[int], out: Path, evm: bool) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / "scratch"
    srs_cache = stakelearn_home() / "srs"
    os.environ["STAKELEARN_HOME"] = str(scratch)
    (scratch / "srs").mkdir(parents=True, exist_ok=True)
    for srs in srs_cache.glob("*.srs"):  # reuse the user's SRS files: generating them is not the bench
        target = scratch / "srs" / srs.name
        if not target.exists():
            os.symlink(srs, target)
    rows = []
    for n, d in points:
        for cols in inner_cols:
            rows.append(bench_point(n, d, cols, scratch, evm))
            write_json_atomic(out / "results.json", {"machine": machine(), "points": rows})
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown_table(rows)
    write_bytes_atomic(out / "results.md", (table + "\n\n" + json.dumps(machine()) + "\n").encode())
    print(table)
    return rows
