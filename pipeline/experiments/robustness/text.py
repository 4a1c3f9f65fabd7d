"""How the report writes figures (ratios, shares, spreads, seeds), and the analysis rows read in
grid order."""

from __future__ import annotations


def plus_minus(value: dict | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def times(bps: int) -> str:
    return f"{bps / 10_000:g}×"


def seed_list(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def epoch_or_never(value: int | None) -> str:
    return "never" if value is None else str(value)


def by_cell(rows: list[dict]) -> dict[tuple, dict]:
    return {(row["data"], row["aggregation"], row["f"], row["attack"]): row for row in rows}


def in_order(rows: list[dict], key: str) -> list:
    return list(dict.fromkeys(row[key] for row in rows))
