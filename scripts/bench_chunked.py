"""Measure the chunk circuit (n=8, C = 256, 1024, 4096) and the combine circuit (n = 8, 16):
rows, logrows, compile / set-up / prove seconds and peak memory, each step in its own process.

    STAKELEARN_HOME=/tmp/somewhere .venv/bin/python scripts/bench_chunked.py docs/chunked-bench.json [C ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from stakelearn.circuits.chunk import chunk_gram, tag_slices
from stakelearn.prover.chunked import ChunkCircuit, CombineCircuit, prove_chunk, prove_combine
from stakelearn.prover.circuit import prepare

N, F, M, MAX_INT, D = 8, 1, 5, 128, 2**16  # D only sizes the combine's absent distance


def measure(circuit, prove) -> dict:
    stats: dict = {}
    prepared = prepare(circuit, stats=stats)
    with tempfile.TemporaryDirectory() as tmp:
        prove(prepared, Path(tmp) / "proof", stats)
    settings = prepared.settings_json()
    row = {"circuit": circuit.label, "logrows": prepared.logrows, "rows": settings["num_rows"]}
    for step, stat in stats.items():
        row[f"{step}_s"], row[f"{step}_peak_mb"] = round(stat.seconds, 1), round(stat.peak_mb)
    print(row, flush=True)
    return row


def chunk_case(chunk: int):
    rng = np.random.default_rng(chunk)
    x = rng.integers(-MAX_INT, MAX_INT + 1, size=(N, chunk))
    mask = (np.arange(N) < M).astype(int)
    return ChunkCircuit(N, F, M, chunk, MAX_INT), lambda p, out, stats: prove_chunk(
        p, tag_slices(x), (mask[:, None] * x).sum(axis=0), mask, out, stats
    )


def combine_case(n: int):
    x = np.random.default_rng(n).integers(-MAX_INT, MAX_INT + 1, size=(n, 64))
    return CombineCircuit(n, 1, n - 3, D, MAX_INT), lambda p, out, stats: prove_combine(
        p, chunk_gram(x), out, stats=stats
    )


def main() -> None:
    out = Path(sys.argv[1])
    chunks = [int(c) for c in sys.argv[2:]] or [256, 1024, 4096]
    rows = json.loads(out.read_text()) if out.exists() else []
    cases = [combine_case(8), combine_case(16), *(chunk_case(c) for c in chunks)]
    for circuit, prove in cases:
        row = measure(circuit, prove)
        rows = [r for r in rows if r["circuit"] != row["circuit"]] + [row]
        out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
