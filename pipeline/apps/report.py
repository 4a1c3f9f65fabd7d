"""The demo's report: text tables (printed and in report.md), summary.json and three plots."""

from __future__ import annotations

import io
from pathlib import Path

from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.pipeline.contracts.types import ETHER
from stakelearn.tables import markdown_table


def epoch_table(summary: dict) -> str:
    rows = [[0, f"{summary['initial_accuracy']:.3f}", "", "", "", "", "", ""]]
    for e in summary["epochs"]:
        prove = f"{e['prove_seconds']:.1f}" if e["prove_seconds"] is not None else "(resumed)"
        rows.append(
            [
                e["epoch"],
                f"{e['accuracy']:.3f}",
                e["selected"],
                e["left_out"] or "-",
                e["flagged"] or "-",
                e["slashed"] or "-",
                f"{e['gas_used']:,}",
                prove,
            ]
        )
    return markdown_table(
        ["epoch", "test accuracy", "selected", "left out", "flagged", "slashed", "gas", "prove s"], rows
    )


def score_table(summary: dict) -> str:
    """Krum scores (fixed-point units squared) per client per epoch; * marks flagged."""
    header = ["client", "role"] + [f"epoch {e['epoch']}" for e in summary["epochs"]]
    rows = []
    for client, role in enumerate(summary["roles"]):
        cells = [f"{int(e['scores'][client]):,}{'*' if client in e['flagged'] else ''}" for e in summary["epochs"]]
        rows.append([client, role, *cells])
    return markdown_table(header, rows)


def balance_table(summary: dict) -> str:
    rows = []
    for client, (role, b) in enumerate(zip(summary["roles"], summary["balances"]["clients"])):
        flagged = sum(client in e["flagged"] for e in summary["epochs"])
        rows.append(
            [
                client,
                role,
                b["address"][:10],
                flagged,
                f"{b['stake_wei'] / ETHER:.2f}",
                f"{b['reward_wei'] / ETHER:.4f}",
            ]
        )
    return markdown_table(["client", "role", "address", "flagged epochs", "stake left (ETH)", "reward (ETH)"], rows)


def timing_table(summary: dict) -> str:
    total = summary["timings_s"]["total"]
    rows = [
        [name, f"{seconds:.1f}", f"{100 * seconds / total:.0f} %"] for name, seconds in summary["timings_s"].items()
    ]
    return markdown_table(["phase", "seconds", "share"], rows)


def accuracy_line(summary: dict) -> str:
    a, target = summary["accuracy_proof"], summary["config"]["target_accuracy"]
    # An optimistic task's count was claimed (proven off chain) and stood its challenge window.
    claimed = summary["circuit"].get("verification") == "optimistic"
    return (
        f"{'Claimed' if claimed else 'Proven'} accuracy of the final model on the requester's {a['samples']} "
        f"evaluation samples: {a['correct']}/{a['samples']} = {a['correct'] / a['samples']:.3f} (target "
        f"{target:.2f}: {'reached, fees paid in full' if a['target_reached'] else 'missed, only the work share paid'}; "
        f"{'settled after an unchallenged window' if claimed else 'proof'} {a['gas_used']:,} gas, "
        f"the requester's reveal {a['reveal_gas_used']:,} gas)."
    )


def report_text(summary: dict) -> str:
    c, o = summary["config"], summary["outcome"]
    lines = [
        f"# StakeLearn task {summary['task_id']} on {summary['chain']['name']} (chain id {summary['chain']['chain_id']})",
        "",
        f"{c['clients']} clients, Krum f={c['byzantine']}, m={summary['circuit']['m']}; {c['attackers']} attackers "
        f"({c['attack']}); {c['split']} split; {c['epochs']} epochs; circuit d={summary['circuit']['d']}"
        + (f" in chunks of {c['chunk']}" if c.get("chunk") else "")
        + f", logrows {summary['circuit']['logrows']} ({summary['circuit']['srs']})",
        "",
        "## Epochs",
        epoch_table(summary),
        "",
        "## Krum scores (* flagged)",
        score_table(summary),
        "",
        "## Final balances",
        balance_table(summary),
        "",
        accuracy_line(summary),
        f"Requester: {summary['balances']['rewarded_wei'] / ETHER:.4f} ETH paid to clients, "
        f"{summary['balances']['refunded_wei'] / ETHER:.4f} ETH refunded.",
        f"Attackers {o['attackers']}: flagged {o['attackers_flagged']} (flagged epochs earn nothing); honest clients "
        f"flagged: {o['honest_flagged'] or 'none'}; slashed (equivocation): {o['slashed'] or 'none'}; every honest "
        f"client rewarded: {'yes' if o['honest_rewarded'] else 'no'}.",
        "",
        "## Wall time",
        timing_table(summary),
    ]
    return "\n".join(lines) + "\n"


def _save(figure, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    buffer = io.BytesIO()
    for axis in figure.axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    write_bytes_atomic(path, buffer.getvalue())


def write_plots(folder: Path, summary: dict) -> None:
    """accuracy.png, scores.png and stakes.png: the three things a reader looks for first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [0] + [e["epoch"] for e in summary["epochs"]]
    figure, axis = plt.subplots(figsize=(5.5, 4))
    axis.plot(epochs, [summary["initial_accuracy"]] + [e["accuracy"] for e in summary["epochs"]], marker="o")
    axis.set(title="global model test accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    _save(figure, folder / "accuracy.png")

    scores, stakes = plt.subplots(figsize=(6.5, 4)), plt.subplots(figsize=(6.5, 4))
    for client, role in enumerate(summary["roles"]):
        style = dict(linestyle="--", marker="x") if role != "honest" else dict(marker="o", alpha=0.7)
        label = f"client {client} ({role})"
        scores[1].plot(epochs[1:], [int(e["scores"][client]) for e in summary["epochs"]], label=label, **style)
        stakes[1].plot(epochs, [row[client] / ETHER for row in summary["stakes_wei"]], label=label, **style)
    scores[1].set(
        title="Krum score per client (lower: closer to the others)", xlabel="epoch", ylabel="score", yscale="log"
    )
    stakes[1].set(title="stake per client", xlabel="epoch", ylabel="ETH")
    for _, axis in (scores, stakes):
        axis.legend(fontsize=7)
    _save(scores[0], folder / "scores.png")
    _save(stakes[0], folder / "stakes.png")
    plt.close("all")


def write_report(folder: Path, summary: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "summary.json", summary)
    write_plots(folder, summary)
    write_bytes_atomic(
        folder / "report.md",
        (report_text(summary) + "\n![accuracy](accuracy.png) ![scores](scores.png) ![stakes](stakes.png)\n").encode(),
    )
