"""The report's tables, each a pure function of the analysis (its sweep or its per-cell rows)."""

from __future__ import annotations

import numpy as np

from stakelearn.pipeline.experiments.robustness.simulation import CLEAN, SHORT_RULE
from stakelearn.pipeline.experiments.robustness.statistics import share
from stakelearn.pipeline.experiments.robustness.sweep import in_time
from stakelearn.pipeline.experiments.robustness.targets import DETECTED, DETECTION_EPOCHS, MOVED_LITTLE
from stakelearn.pipeline.experiments.robustness.text import (
    by_cell,
    epoch_or_never,
    in_order,
    percent,
    plus_minus,
    times,
)
from stakelearn.tables import markdown_table


def fs_caught(summary: dict, attack: str) -> str:
    keys = [key for key in summary["iid_epochs_to_flag"] if key.startswith(f"{attack} ")]
    caught = [key.split("=")[1] for key in keys if key in in_time(summary)]
    return ("f = " + ", ".join(caught)) if caught else "none"


def sweep_table(swept: list[dict]) -> str:
    """Per candidate, on the choosing seeds: honest client-epochs flagged (runs with one), attacker-epochs
    flagged per attack, and the IID f whose every attacker was flagged in time."""
    attacks = list(dict.fromkeys(a for row in swept for a in row["per_attack"]))
    detected = [a for a in DETECTED if any(k.startswith(f"{a} ") for row in swept for k in row["iid_epochs_to_flag"])]
    header = ["flag ratio (× reference)", "honest client-epochs flagged (runs)"]
    header += [f"{a}: epochs flagged" for a in attacks]
    header += [f"IID {a}: every attacker flagged by epoch {DETECTION_EPOCHS}" for a in detected]
    body = [
        [times(row["outlier_bps"]), f"{row['honest_flagged']} ({row['runs_with_honest_flagged']})"]
        + [percent(row["per_attack"][a]["attackers_flagged_share"]) for a in attacks]
        + [fs_caught(row, a) for a in detected]
        for row in swept
    ]
    return markdown_table(header, body)


def judgement_table(rows: list[dict]) -> str:
    """Per split and f (both rules, every attack and the clean run): the worst honest ratio on each
    seed set, and on the judging seeds the honest flags, the attackers flagged and paid, and for
    each IID-detected attack the highest ratio that flags every attacker in time."""
    detected = [a for a in DETECTED if a in in_order(rows, "attack")]
    body = []
    for data in in_order(rows, "data"):
        for f in in_order(rows, "f"):
            cells = [row for row in rows if row["data"] == data and row["f"] == f]
            if not cells:
                continue
            attacked = [row for row in cells if row["attackers"]]
            line = [data, str(f)]
            line += [f"{max(row['worst_honest_ratio'][role] for row in cells):.2f}" for role in ("choose", "judge")]
            line.append(
                f"{sum(row['honest_flagged'] for row in cells)} of {sum(row['honest_epochs'] for row in cells)}"
            )
            flagged_ = sum(row["attackers_flagged"] for row in attacked)
            epochs = sum(row["attacker_epochs"] for row in attacked)
            line.append(percent(share(flagged_, epochs)))
            for attack in detected:
                early = [row["attackers_early_ratio"]["judge"] for row in attacked if row["attack"] == attack]
                line.append(f"{min(early):.2f}" if early else "–")
            body.append(line)
    return markdown_table(
        ["split", "f", "worst honest ratio (choosing seeds)", "worst honest ratio (judging seeds)"]
        + ["honest client-epochs flagged", "attacker-epochs flagged"]
        + [f"{a}: every attacker flagged by epoch {DETECTION_EPOCHS} below" for a in detected],
        body,
    )


def clean_table(rows: list[dict]) -> str:
    """Clean-run accuracy per split, rule and f: the reference each cell's drop is measured from."""
    by = by_cell(rows)
    columns = [(a, f) for f in in_order(rows, "f") for a in in_order(rows, "aggregation")]
    header = ["split"] + [f"{SHORT_RULE.get(a, a)} f={f}" for a, f in columns]
    body = [
        [data]
        + [
            plus_minus(by[data, a, f, CLEAN]["final_accuracy"], 3) if (data, a, f, CLEAN) in by else "–"
            for a, f in columns
        ]
        for data in in_order(rows, "data")
    ]
    return markdown_table(header, body)


def attack_table(rows: list[dict]) -> str:
    """Per split, f and attack: the rules side by side; flags on the judging seeds."""
    by = by_cell(rows)
    rules = in_order(rows, "aggregation")
    header = ["split", "f", "attack"]
    names = ("drop (pts)", "attacker-epochs flagged", "all flagged by epoch", "attackers' share of paid epochs")
    for name in (*names, "attackers' weight"):
        header += [f"{SHORT_RULE.get(a, a)}: {name}" for a in rules]
    header.append("honest client-epochs flagged")
    body = []
    for data in in_order(rows, "data"):
        for f in in_order(rows, "f"):
            for attack in in_order(rows, "attack"):
                cells = [by.get((data, a, f, attack)) for a in rules]
                if attack == CLEAN or None in cells:
                    continue
                line = [data, str(f), attack] + [plus_minus(c["drop_points"]) for c in cells]
                line += [percent(c["attackers_flagged_share"]) for c in cells]
                line += [epoch_or_never(c["epochs_to_flag_all"]) for c in cells]
                line += [percent(c["attackers_paid_share"]) for c in cells]
                line += [percent(c["attacker_weight"]) for c in cells]
                line.append(str(sum(c["honest_flagged"] for c in cells)))
                body.append(line)
    return markdown_table(header, body)


def movement_table(rows: list[dict]) -> str:
    """Per split (every f and seed): the movement's worst honest client-epoch on each side, against
    the median attacker-epoch of the attacks that side would be for."""
    attacks = in_order(rows, "attack")
    columns = [("far", a) for a in DETECTED if a in attacks] + [("little", a) for a in MOVED_LITTLE if a in attacks]
    body = []
    for data in in_order(rows, "data"):
        cells = [row for row in rows if row["data"] == data]
        line = [data] + [f"{max(row[f'movement_honest_{side}'] for row in cells):.2f}" for side in ("far", "little")]
        for side, attack in columns:
            values = [row[f"movement_attackers_{side}"] for row in cells if row["attack"] == attack]
            line.append(f"{float(np.median(values)):.2f}" if values else "–")
        body.append(line)
    return markdown_table(
        ["split", "honest: worst (too far)", "honest: worst (too little)"]
        + [f"{attack}: median (too {side})" for side, attack in columns],
        body,
    )
