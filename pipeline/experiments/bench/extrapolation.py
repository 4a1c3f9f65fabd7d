"""The chunked profile's arithmetic (pure functions): a measured point's derived figures, and the
extrapolation from each chunk shape's per-chunk figures to millions of coordinates on N provers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stakelearn.circuits.chunk import chunk_count
from stakelearn.tables import markdown_table

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
    chunks_per_block = int(block_gas_limit // gas_per_chunk)
    if chunks_per_block < 1:
        raise ValueError(f"a chunk's {gas_per_chunk:,.0f} gas does not fit a {block_gas_limit:,} gas block")
    return Extrapolation(
        n=n,
        chunk=chunk,
        d=d,
        chunks=chunks,
        prove_hours={w: seconds_per_chunk * chunks / w / 3600 for w in workers},
        epoch_gas=round(gas_per_chunk * chunks) + combine_gas,
        transactions=math.ceil(chunks / chunks_per_block) + 1,
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
