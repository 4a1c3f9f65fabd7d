"""The report's figure: each cell's worst honest client against the flag ratio, and its attackers."""

from __future__ import annotations

import io

import numpy as np

from stakelearn.pipeline.experiments.robustness.text import in_order, times


def plot(analysis: dict) -> bytes:
    """The PNG: per split, against f, each cell's worst honest ratio on the choosing and on the
    judging seeds, and its attackers' median ratio, with the judged flag ratio as a line (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, bps = analysis["rows"], analysis["judgement"]["chosen"]["outlier_bps"]
    splits = in_order(rows, "data")
    columns = min(2, len(splits))
    lines = -(-len(splits) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(6 * columns, 3.8 * lines + 0.6), squeeze=False, sharey=True)
    jitter = np.random.default_rng(0)
    series = (
        ("honest, choosing seeds", "worst_honest_ratio", "choose", "o", "C0", -0.15),
        ("honest, judging seeds", "worst_honest_ratio", "judge", "x", "C1", 0.15),
        ("attackers (median attacker-epoch), judging seeds", "attackers_median_ratio", "judge", "^", "grey", 0.0),
    )
    for axis in axes.flat[len(splits) :]:
        axis.set_visible(False)
    for axis, data in zip(axes.flat, splits):
        cells = [row for row in rows if row["data"] == data]
        for label, key, role, marker, color, offset in series:
            points = [(row["f"], row[key][role]) for row in cells if row[key][role] is not None]
            xs = [f + offset + jitter.uniform(-0.08, 0.08) for f, _ in points]
            axis.scatter(
                xs, [max(y, 0.01) for _, y in points], marker=marker, s=14, color=color, alpha=0.6, label=label
            )
        axis.axhline(bps / 10_000, color="red", linestyle="--", linewidth=1, label=f"flag ratio {times(bps)}")
        axis.set_yscale("log")
        axis.set_title(data, fontsize=10)
        axis.set_xlabel("f")
        axis.grid(True, alpha=0.3)
    for line in axes:
        line[0].set_ylabel("raw Krum score / reference")
    axes[0][0].legend(fontsize=7, loc="upper left")
    figure.suptitle("Each cell's worst honest client against the flag ratio, and its attackers", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
