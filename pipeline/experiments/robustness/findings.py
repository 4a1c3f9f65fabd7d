"""The findings: each a sentence or two read off the analysis, every figure computed, and whether
the targets (:mod:`targets`) were met."""

from __future__ import annotations

import numpy as np

from stakelearn.circuits.krum import MULTIKRUM, NNM_MULTIKRUM
from stakelearn.pipeline.experiments.robustness.simulation import SHORT_RULE
from stakelearn.pipeline.experiments.robustness.sweep import in_time
from stakelearn.pipeline.experiments.robustness.targets import (
    CONFIDENCE,
    CRAFTED,
    DETECTED,
    DETECTION_EPOCHS,
    KEPT_CLOSE,
    MOVED_LITTLE,
    NOISE_POINTS,
    TARGET_ALPHA,
    TARGET_POINTS,
)
from stakelearn.pipeline.experiments.robustness.text import by_cell, in_order, percent, seed_list, times


def movement_finding(rows: list[dict]) -> str:
    """Whether the movement separates the attackers a Krum score does not: per attack, on how many
    splits its median attacker-epoch lies beyond every honest client-epoch of that split."""
    attacks = in_order(rows, "attack")
    parts = []
    for side, names in (("far", DETECTED), ("little", MOVED_LITTLE)):
        for attack in (a for a in names if a in attacks):
            beyond = [
                data
                for data in in_order(rows, "data")
                if np.median(
                    [r[f"movement_attackers_{side}"] for r in rows if r["data"] == data and r["attack"] == attack]
                )
                > max(r[f"movement_honest_{side}"] for r in rows if r["data"] == data)
            ]
            parts.append(f"{attack} (too {side}) on {', '.join(beyond) if beyond else 'none'}")
    return (
        "- **A second statistic, tried: how far each client moved from the global model it trained from** (a proof "
        "could take the previous aggregate as an input; see the movement table). The splits on which an attack's "
        "median attacker-epoch lies beyond every honest client-epoch: " + "; ".join(parts) + "."
    )


def choice_finding(chosen: dict) -> str:
    """How the ratio was chosen, in numbers."""
    seeds, swept, bps = seed_list(chosen["seeds"]), chosen["candidates"], chosen["chosen_outlier_bps"]
    if bps is None:
        return (
            f"- **The flag ratio, chosen on seeds {seeds}:** none; every candidate up to "
            f"{times(swept[-1]['outlier_bps'])} flags an honest client there, so the largest is judged."
        )
    first = next(row for row in swept if row["outlier_bps"] == chosen["smallest_safe_bps"])
    below = [row for row in swept if row["outlier_bps"] < first["outlier_bps"]]
    text = (
        f"- **The flag ratio, chosen on seeds {seeds}: {times(bps)} the reference score.** The smallest candidate "
        f"that flags no honest client in any of their {first['runs']} runs is {times(first['outlier_bps'])}"
    )
    if below:
        text += (
            f" ({times(below[-1]['outlier_bps'])} flags {below[-1]['honest_flagged']} honest client-epochs in "
            f"{below[-1]['runs_with_honest_flagged']} runs: {', '.join(below[-1]['where_honest_flagged'][:4])}"
            + (" …" if len(below[-1]["where_honest_flagged"]) > 4 else "")
            + ")"
        )
    caught = in_time(first)
    if not caught:
        return text + f". It flags no IID attacker within {DETECTION_EPOCHS} epochs, so nothing bounds a margin: none."
    text += (
        f". The margin rule raises it as long as every IID attacker it flags within {DETECTION_EPOCHS} epochs "
        f"({', '.join(sorted(caught))}) still is"
    )
    above = next((row for row in swept if row["outlier_bps"] > bps), None)
    if above is not None:
        lost = sorted(caught - in_time(above))
        text += f": {times(above['outlier_bps'])} loses {', '.join(lost)}"
    return text + (f", so {times(bps)}." if bps != first["outlier_bps"] else ": no margin.")


def judgement_finding(judged: dict, seeds: list[int], label: str) -> str:
    """The held-out verdict on one ratio, in numbers."""
    clean = judged["without_attackers"]
    return (
        f"- **{label}, judged on seeds {seed_list(seeds)} (held out):** {judged['honest_flagged']} of "
        f"{judged['honest_epochs']:,} honest client-epochs flagged (rate {judged['honest_flagged_rate']:.2e}; one-sided "
        f"{CONFIDENCE:.0%} upper bound {judged['honest_flagged_upper']:.2e}, Clopper-Pearson"
        + (", the rule of three" if judged["honest_flagged"] == 0 else "")
        + f"), in {judged['runs_with_honest_flagged']} of {judged['runs']:,} runs (upper bound "
        f"{judged['runs_with_honest_flagged_upper']:.2e} per run, the bound that does not assume a run's client-epochs "
        f"independent). The worst honest ratio there: {judged['worst_honest_ratio']:.2f}× ({judged['worst_honest_run']}), "
        f"a margin of {judged['margin']:.2f} of the ratio"
        + (" (under 1: no honest client flagged)" if judged["margin"] <= 1 else "")
        + (f"; flagged in: {', '.join(judged['where_honest_flagged'])}" if judged["where_honest_flagged"] else "")
        + f". In the runs without attackers: {clean['honest_flagged']} of {clean['honest_epochs']:,} honest "
        f"client-epochs flagged (upper bound {clean['honest_flagged_upper']:.2e})."
    )


def cost_finding(judged: dict, swept: list[dict]) -> str | None:
    """When the held-out seeds flag an honest client: what a ratio above their worst honest one
    would have caught on the choosing seeds (read off the sweep, not chosen on the judging seeds)."""
    if judged["margin"] <= 1:
        return None
    above = next((row for row in swept if row["outlier_bps"] > judged["worst_honest_ratio"] * 10_000), None)
    if above is None:
        return "- **To flag no honest client on the judging seeds** a ratio above every candidate would be needed."
    return (
        f"- **To flag no honest client on the judging seeds** the ratio would have to exceed "
        f"{judged['worst_honest_ratio']:.2f}×; the sweep's next candidate, {times(above['outlier_bps'])}, flags on "
        f"the choosing seeds {percent(above['attackers_flagged_share'], 1)} of the attacker-epochs (noise "
        f"{percent(above['per_attack'].get('noise', {}).get('attackers_flagged_share'), 1)}) and in time every IID "
        f"attacker of: {', '.join(sorted(in_time(above))) or 'none'}."
    )


def attackers_finding(judged: dict, seeds: list[int]) -> list[str]:
    """What the attackers lost and earned under the judged ratio on the judging seeds."""
    per_attack = judged["per_attack"]
    lines = [
        f"- **Attackers flagged (seeds {seed_list(seeds)}, at {times(judged['outlier_bps'])}):** "
        f"{percent(judged['attackers_flagged_share'], 1)} of all attacker-epochs; per attack: "
        + ", ".join(f"{a} {percent(v['attackers_flagged_share'], 1)}" for a, v in per_attack.items())
        + ". **What they earned:** the share of the paid client-epochs that went to attackers, against their share "
        "of all client-epochs: "
        + ", ".join(
            f"{a} {percent(v['attackers_paid_share'], 1)} ({percent(v['attackers_client_share'], 1)})"
            for a, v in per_attack.items()
        )
        + "."
    ]
    detection = judged["iid_epochs_to_flag"]
    if detection:
        caught = in_time(judged)
        lines.append(
            f"- **IID {', '.join(a for a in DETECTED if any(k.startswith(a + ' ') for k in detection))}: every "
            f"attacker flagged within the first {DETECTION_EPOCHS} epochs** (every held-out run, either rule): "
            + ("met" if caught == set(detection) else "missed")
            + f" (caught in time: {', '.join(k for k in detection if k in caught) or 'none'}; not: "
            + (
                ", ".join(
                    f"{k} ({'never' if e is None else f'by epoch {e}'})"
                    for k, e in detection.items()
                    if k not in caught
                )
                or "none"
            )
            + ")."
        )
    return lines


def framing_finding(rows: list[dict]) -> str:
    """Why a Krum-score ratio cannot slash: the worst honest ratio per split, by f, where colluders lower the reference."""
    worst = {}
    for row in rows:
        key = (row["data"], row["f"])
        worst[key] = max(worst.get(key, 0.0), *row["worst_honest_ratio"].values())
    peak = max(worst, key=worst.get)
    data = peak[0]
    fs = sorted(f for d, f in worst if d == data)
    top = max(
        (row for row in rows if row["data"] == data and row["f"] == peak[1]),
        key=lambda r: max(r["worst_honest_ratio"].values()),
    )
    return (
        f"- **Why a flag is not a slash.** The worst honest ratio (any seed, rule and attack) on {data} data by f: "
        + ", ".join(f"f={f} {worst[data, f]:.2f}×" for f in fs)
        + f"; the highest, {worst[peak]:.2f}×, under {top['attack']} ({SHORT_RULE.get(top['aggregation'])}). "
        "Colluders that cluster take the smallest scores and lower the reference, so an honest client with "
        "one-class data becomes the outlier: the honest clients' own spread bounds their ratio, and non-IID data "
        "leaves it unbounded. A flag costs that client an unpaid epoch, never stake."
    )


def accuracy_findings(rows: list[dict]) -> list[str]:
    """The accuracy targets at the target split: NNM keeps plain attacks close to the clean run, and halves crafted ones' damage."""
    by = by_cell(rows)
    target = f"α={TARGET_ALPHA:g}"
    fs = [f for f in in_order(rows, "f") if f]
    lines = []
    close = [
        (a, f, by[target, NNM_MULTIKRUM, f, a]) for f in fs for a in KEPT_CLOSE if (target, NNM_MULTIKRUM, f, a) in by
    ]
    if close:
        missed = [
            (a, f, row["drop_points"]["mean"]) for a, f, row in close if row["drop_points"]["mean"] > TARGET_POINTS
        ]
        lines.append(
            f"- **{target}: {', '.join(KEPT_CLOSE)} within {TARGET_POINTS:g} points of the clean run with NNM + "
            f"Multi-Krum, f = {fs[0]}–{fs[-1]}**: "
            + ("met" if not missed else f"missed in {len(missed)} of {len(close)} (attack, f)")
            + (": " + ", ".join(f"{a} f={f} {d:.1f}" for a, f, d in missed) if missed else "")
            + f"; worst mean drop {max(row['drop_points']['mean'] for _, _, row in close):.1f} points."
        )
    verdicts = {"met": [], "missed": [], "nothing to halve": []}
    for f in fs:
        for attack in CRAFTED:
            mk, nnm = by.get((target, MULTIKRUM, f, attack)), by.get((target, NNM_MULTIKRUM, f, attack))
            if mk and nnm:
                mk_drop, nnm_drop = mk["drop_points"]["mean"], nnm["drop_points"]["mean"]
                verdict = (
                    "nothing to halve" if mk_drop < NOISE_POINTS else "met" if nnm_drop <= mk_drop / 2 else "missed"
                )
                verdicts[verdict].append(f"{attack} f={f} ({mk_drop:.1f} → {nnm_drop:.1f})")
    if any(verdicts.values()):
        lines.append(
            f"- **{target}: ALIE and IPM damage with NNM at most half of Multi-Krum's** (mean drop, points, "
            "Multi-Krum → NNM): "
            + "; ".join(f"{name} in {len(items)}: {', '.join(items)}" for name, items in verdicts.items() if items)
            + f" (nothing to halve: Multi-Krum loses under {NOISE_POINTS:g} points)."
        )
    return lines


def findings(analysis: dict) -> list[str]:
    """Every finding, one markdown bullet each: the choice, its judgement (and the smallest safe
    candidate's, when the margin moved it), what a safer ratio would cost, the attackers, why a
    flag is no slash, the accuracy targets and the movement."""
    chosen, judgement, rows = analysis["choice"], analysis["judgement"], analysis["rows"]
    label = f"{times(judgement['chosen']['outlier_bps'])}"
    lines = [choice_finding(chosen), judgement_finding(judgement["chosen"], judgement["seeds"], label)]
    if "smallest_safe" in judgement:
        lines.append(
            judgement_finding(
                judgement["smallest_safe"],
                judgement["seeds"],
                f"Without the margin, {times(judgement['smallest_safe']['outlier_bps'])}",
            )
        )
    cost = cost_finding(judgement["chosen"], chosen["candidates"])
    lines += ([cost] if cost else []) + attackers_finding(judgement["chosen"], judgement["seeds"])
    lines.append(framing_finding(rows))
    return lines + accuracy_findings(rows) + [movement_finding(rows)]
