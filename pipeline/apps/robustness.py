"""`stakelearn robustness`: how well Multi-Krum and the slashing rule hold up against each attack.

The numpy reference of the proven pipeline, minus proofs and chain: every epoch the clients
train, attackers craft their updates, updates are quantized, Multi-Krum selects ``m``, the
rollup's rule flags outliers, and the global model moves by the mean of the selected updates.
The flags are then replayed through the slashing rule. The grid is (no attack + each attack) x
(IID, Dirichlet split) x (f attackers, Krum configured for the same f); each cell is compared
with the clean run of the same split and f. Results: ``robustness.json``, ``robustness.md``
(table and a few sentences drawn from the numbers) and ``robustness.png``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.digits import accuracy, initial_parameters, one_torch_thread
from stakelearn.models.quantize import quantize
from stakelearn.pipeline.apps.tables import markdown_table
from stakelearn.pipeline.federation.attacks import ATTACKS
from stakelearn.pipeline.federation.rules import SlashingPolicy, flagged, slashed
from stakelearn.pipeline.federation.task import SPLITS, TaskConfig, client_models, make_federation, next_global

CLEAN = "none"  # the grid's name for the run without attackers
MIN_CLIENTS = 16  # below this, f=6 (the interesting end) breaks Krum's n > 2f + 2
TOLERANCE_POINTS = 2.0  # an attack "costs nothing" if final accuracy is within this of the clean run
KEPT_OUT = 0.05  # attackers whose updates Multi-Krum averaged in at most this often were "kept out"


@dataclass(frozen=True)
class RunResult:
    """One simulated task: test accuracy after each epoch, and each epoch's selection, flags and slashes."""

    accuracy: list[float]  # after each epoch
    selected: np.ndarray  # [epochs, n] bool, Multi-Krum's choice (what went into the model)
    flags: np.ndarray  # [epochs, n] bool, the rollup's flags
    slashes: np.ndarray  # [epochs, n] bool, the slashing rule replayed on the flags
    attackers: list[int]

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1]


def simulate(config: TaskConfig, policy: SlashingPolicy) -> RunResult:
    """Run ``config``'s task epoch by epoch, exactly as the proven pipeline does, without proofs."""
    federation = make_federation(config)
    model = initial_parameters(config.hidden, config.seed)
    accuracies, selected, flags = [], [], []
    with one_torch_thread():
        for epoch in range(1, config.epochs + 1):  # numbered as on chain: same seeds as the demo
            models = client_models(federation, model, epoch)
            quantized = np.stack([quantize(row, config.fixed_point) for row in models])
            round_ = krum_round(quantized, config.krum)
            selected.append(round_.mask)
            flags.append(flagged(round_.scores, round_.mask, policy.outlier_bps))
            model = next_global(round_.total, config.krum.m, config.fixed_point)
            accuracies.append(accuracy(model, federation.test, config.hidden))
    flags = np.array(flags, dtype=bool)
    return RunResult(accuracies, np.array(selected, dtype=bool), flags, slashed(flags, policy), config.attacker_ids)


# The rates, from the [epochs, n] flags or slashes: "ever" means in at least one epoch.


def honest_ever_rate(marks: np.ndarray, attackers: list[int]) -> float:
    """The share of honest clients marked (flagged or slashed) at least once."""
    honest = np.delete(np.asarray(marks, dtype=bool), attackers, axis=1)
    return float(honest.any(axis=0).mean())


def missed_rate(slashes: np.ndarray, attackers: list[int]) -> float | None:
    """The share of attackers never slashed; None when nobody attacked."""
    if not attackers:
        return None
    return float((~np.asarray(slashes, dtype=bool)[:, attackers].any(axis=0)).mean())


def attackers_selected_rate(selected: np.ndarray, attackers: list[int]) -> float | None:
    """The share of (attacker, epoch) updates Multi-Krum averaged into the model; None when nobody attacked.
    Tells a missed attacker that still did harm (selected) from one Krum kept out but nobody flagged."""
    if not attackers:
        return None
    return float(np.asarray(selected, dtype=bool)[:, attackers].mean())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def cell_row(attack: str, split: str, f: int, result: RunResult, clean: RunResult) -> dict:
    """One grid cell's figures, compared with the clean run of the same split and f."""
    return {
        "attack": attack,
        "split": split,
        "f": f,
        "attackers": len(result.attackers),
        "final_accuracy": round(result.final_accuracy, 4),
        "clean_accuracy": round(clean.final_accuracy, 4),
        "drop_points": round(100 * (clean.final_accuracy - result.final_accuracy), 2),
        "false_slash_rate": round(honest_ever_rate(result.slashes, result.attackers), 4),
        "missed_attacker_rate": _rounded(missed_rate(result.slashes, result.attackers)),
        "attackers_selected_rate": _rounded(attackers_selected_rate(result.selected, result.attackers)),
        "honest_flagged_rate": round(honest_ever_rate(result.flags, result.attackers), 4),
        "accuracy_per_epoch": [round(a, 4) for a in result.accuracy],
    }


def grid_configs(
    clients: int, byzantine: tuple[int, ...], epochs: int, seed: int, alpha: float
) -> list[tuple[str, TaskConfig]]:
    """Every cell's (attack, config), each split and f's clean run first. Building them all up
    front validates the whole grid before the first run."""
    if clients < MIN_CLIENTS:
        raise InputError(
            f"robustness needs --clients >= {MIN_CLIENTS} (got {clients}) so that f up to 6 fits Krum's n > 2f + 2"
        )
    if not byzantine:
        raise InputError("robustness needs at least one --byzantine value")
    cells = []
    for split in SPLITS:
        for f in byzantine:
            for attack in (CLEAN, *ATTACKS):
                config = TaskConfig(
                    clients=clients,
                    byzantine=f,
                    attackers=0 if attack == CLEAN else f,
                    attack="sign_flip" if attack == CLEAN else attack,
                    epochs=epochs,
                    split=split,
                    alpha=alpha,
                    seed=seed,
                )
                cells.append((attack, config))
    return cells


COLUMNS = [
    ("attack", "attack"),
    ("split", "split"),
    ("f", "f"),
    ("final_accuracy", "accuracy"),
    ("clean_accuracy", "clean"),
    ("drop_points", "drop (pts)"),
    ("false_slash_rate", "honest slashed"),
    ("missed_attacker_rate", "attackers missed"),
    ("honest_flagged_rate", "honest flagged"),
    ("attackers_selected_rate", "attacker updates averaged in"),
]


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def results_table(rows: list[dict]) -> str:
    return markdown_table(
        [title for _, title in COLUMNS],
        [[_cell(row[key], 1 if key == "drop_points" else 3) for key, _ in COLUMNS] for row in rows],
    )


def _where(rows: list[dict]) -> str:
    return ", ".join(f"{r['split']} f={r['f']}" for r in rows)


def _percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def findings(rows: list[dict]) -> list[str]:
    """A few sentences read off the numbers: which attacks Krum and the slashing rule handle, and where they fail."""
    clean = [r for r in rows if r["attack"] == CLEAN]
    slashed_clean = [r for r in clean if r["false_slash_rate"]]
    lines = [
        f"Without attackers, honest clients were slashed in {_where(slashed_clean)}."
        if slashed_clean
        else "Without attackers, no honest client was slashed in any split or f.",
        # Multi-Krum always leaves out n - m clients, so the clean reference itself depends on f.
        "Clean-run accuracy (the reference of each cell; Multi-Krum leaves out n - m clients even when nobody attacks): "
        + ", ".join(f"{r['split']} f={r['f']} {r['final_accuracy']:.3f}" for r in clean)
        + ".",
    ]
    handled = []
    for attack in ATTACKS:
        cells = [r for r in rows if r["attack"] == attack]
        evaded = [r for r in cells if r["missed_attacker_rate"]]
        wrongly = [r for r in cells if r["false_slash_rate"]]
        damaged = [r for r in cells if r["drop_points"] > TOLERANCE_POINTS]
        if not (evaded or wrongly or damaged):
            handled.append(attack)
            continue
        parts = []
        if evaded:
            parts.append(
                "attackers went unslashed (share of attackers missed, of their updates averaged in) in "
                + ", ".join(
                    f"{_where([r])} ({_percent(r['missed_attacker_rate'])}, {_percent(r['attackers_selected_rate'])})"
                    for r in evaded
                )
            )
            if all(r["attackers_selected_rate"] <= KEPT_OUT for r in evaded):
                parts.append(
                    "Multi-Krum kept them out of the model, but they were not flagged often enough to be slashed"
                )
        # Slashing comes after the fact: a caught attacker may still have been averaged into the model.
        used = [r for r in cells if r not in evaded and r["attackers_selected_rate"] > KEPT_OUT]
        if used:
            parts.append(
                "attackers were slashed, yet Multi-Krum averaged their updates in (share) "
                + ", ".join(f"{_where([r])} ({_percent(r['attackers_selected_rate'])})" for r in used)
            )
        if wrongly:
            parts.append(
                f"honest clients were slashed in {_where(wrongly)} (up to {_percent(max(r['false_slash_rate'] for r in wrongly))})"
            )
        if damaged:
            parts.append(
                f"accuracy fell more than {TOLERANCE_POINTS:g} points below the clean run in {_where(damaged)} "
                f"(worst {max(r['drop_points'] for r in damaged):.1f} points)"
            )
        else:
            parts.append(f"accuracy stayed within {TOLERANCE_POINTS:g} points of the clean run everywhere")
        lines.append(f"- **{attack}**: " + "; ".join(parts) + ".")
    if handled:
        lines.insert(
            2,
            f"Every attacker slashed, no honest client slashed and accuracy within {TOLERANCE_POINTS:g} points "
            f"of the clean run in every cell: {', '.join(handled)}. Elsewhere:",
        )
    return lines


def plot(rows: list[dict], path: Path) -> None:
    """Per split: the accuracy drop per attack (top), and the shares of honest clients slashed,
    attackers missed and attacker updates Multi-Krum averaged in (bottom); one bar shade per f."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(ATTACKS)
    splits = sorted({r["split"] for r in rows}, key=SPLITS.index)
    fs = sorted({r["f"] for r in rows})
    rates = (
        ("false_slash_rate", "honest slashed"),
        ("missed_attacker_rate", "attackers missed"),
        ("attackers_selected_rate", "attacker updates averaged in"),
    )
    figure, axes = plt.subplots(2, len(splits), figsize=(6.5 * len(splits), 7.5), squeeze=False, sharey="row")
    x = np.arange(len(attacks))
    group = 0.8 / len(fs)  # each f gets a group of bars within an attack's slot
    for column, split in enumerate(splits):
        by = {(r["attack"], r["f"]): r for r in rows if r["split"] == split}
        top, bottom = axes[0][column], axes[1][column]
        for i, f in enumerate(fs):
            start = x - 0.4 + i * group
            top.bar(
                start + group / 2,
                [by[a, f]["drop_points"] for a in attacks],
                group,
                label=f"f={f}",
                color="C0",
                alpha=1.0 - 0.5 * i,
            )
            for j, (key, name) in enumerate(rates):
                bottom.bar(
                    start + (j + 0.5) * group / len(rates),
                    [by[a, f][key] or 0.0 for a in attacks],
                    group / len(rates),
                    label=f"{name}, f={f}",
                    color=("C1", "C3", "C4")[j],
                    alpha=1.0 - 0.5 * i,
                )
        top.axhline(TOLERANCE_POINTS, color="grey", linestyle="--", linewidth=1)
        top.set_title(f"{split}: accuracy drop vs. the clean run (points; dashed: {TOLERANCE_POINTS:g})")
        bottom.set_title(f"{split}: shares over the run")
        bottom.set_ylim(0, 1.05)
        for axis in (top, bottom):
            axis.set_xticks(x, attacks, rotation=20)
            axis.grid(True, axis="y", alpha=0.3)
        top.legend(fontsize=8)
    handles, labels = axes[1][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(fs), fontsize=8)
    figure.tight_layout(rect=(0, 0.09, 1, 1))  # room at the bottom for the shared legend
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_robustness(
    out: Path,
    clients: int = 16,
    byzantine: tuple[int, ...] = (3, 6),
    epochs: int = 10,
    seed: int = 0,
    alpha: float = 0.5,
) -> list[dict]:
    """Run the grid, print one line per run, write ``out/robustness.{json,md,png}``; return the rows."""
    cells = grid_configs(clients, byzantine, epochs, seed, alpha)
    policy = SlashingPolicy()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, clean = [], None
    for attack, config in cells:
        result = simulate(config, policy)
        clean = result if attack == CLEAN else clean  # the clean cell comes first for its split and f
        row = cell_row(attack, config.split, config.byzantine, result, clean)
        rows.append(row)
        print(
            f"robustness: {attack:>10} {config.split:>9} f={config.byzantine}: accuracy {row['final_accuracy']:.3f} "
            f"(drop {row['drop_points']:+.1f} pts), honest slashed {row['false_slash_rate']:.2f}, "
            f"attackers missed {_cell(row['missed_attacker_rate'])}, honest flagged {row['honest_flagged_rate']:.2f}, "
            f"attacker updates averaged in {_cell(row['attackers_selected_rate'])}",
            file=sys.stderr,
            flush=True,
        )
    seconds = round(time.perf_counter() - start, 1)
    settings = {
        "clients": clients,
        "byzantine": list(byzantine),
        "epochs": epochs,
        "seed": seed,
        "alpha": alpha,
        "policy": asdict(policy),
        "seconds": seconds,
    }
    write_json_atomic(out / "robustness.json", {"settings": settings, "rows": rows})
    setup = (
        f"n={clients} clients, {epochs} epochs, seed {seed}, Dirichlet alpha {alpha}, f attackers with Krum set to the same f "
        f"(m = n - f). A client is flagged when Multi-Krum left it out with a score above {policy.outlier_bps / 10_000:g}x the "
        f"largest selected score; it is slashed when flagged in {policy.threshold} "
        f"of its last {policy.window} epochs. Rates are over the run: honest clients slashed "
        f"(or flagged) at least once, attackers never slashed, and the share of the attackers' updates Multi-Krum averaged "
        f"into the model; drop is the clean run's final accuracy minus the cell's, in points. {len(rows)} runs in {seconds} s."
    )
    report = [
        "# Robustness: Multi-Krum and slashing against each attack",
        "",
        setup,
        "",
        results_table(rows),
        "",
        "\n\n".join(findings(rows)),
    ]
    write_bytes_atomic(out / "robustness.md", ("\n".join(report) + "\n").encode())
    plot(rows, out / "robustness.png")
    print("\n".join(report))
    return rows
