"""``robustness.md``: the fixed prose of ``report.md.tmpl`` (shipped beside this module), filled
with the figures, findings and tables computed from the settings and the analysis."""

from __future__ import annotations

from importlib.resources import files
from string import Template

from stakelearn.pipeline.experiments.robustness.findings import findings
from stakelearn.pipeline.experiments.robustness.simulation import SHORT_RULE
from stakelearn.pipeline.experiments.robustness.tables import (
    attack_table,
    clean_table,
    judgement_table,
    movement_table,
    sweep_table,
)
from stakelearn.pipeline.experiments.robustness.targets import DETECTION_EPOCHS
from stakelearn.pipeline.experiments.robustness.text import seed_list, times

TEMPLATE = "report.md.tmpl"


def setup_figures(settings: dict) -> dict[str, str]:
    """The settings as the report's first paragraph writes them."""
    return {
        "clients": str(settings["clients"]),
        "epochs": str(settings["epochs"]),
        "alphas": ", ".join(f"{a:g}" for a in settings["alphas"]),
        "byzantine": ", ".join(map(str, settings["byzantine"])),
        "rules": ", ".join(f"{SHORT_RULE.get(a, a)} = {a}" for a in settings["aggregations"]),
        "attacks": ", ".join(settings["attacks"]),
        "choosing_seeds": seed_list(settings["choosing_seeds"]),
        "judging_seeds": seed_list(settings["judging_seeds"]),
        "runs": f"{settings['runs']:,}",
        "grid_seconds": str(settings["grid_seconds"]),
        "workers": str(settings["workers"]),
    }


def report_text(settings: dict, analysis: dict, plot: str) -> str:
    """``robustness.md``, every sentence and figure from ``settings`` and ``analysis``; ``plot`` is
    the image's path relative to the report."""
    rows = analysis["rows"]
    template = Template(files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8"))
    return template.substitute(
        setup_figures(settings),
        findings="\n".join(findings(analysis)),
        choice_seeds=seed_list(analysis["choice"]["seeds"]),
        sweep_table=sweep_table(analysis["choice"]["candidates"]),
        judged_ratio=times(analysis["judgement"]["chosen"]["outlier_bps"]),
        judgement_seeds=seed_list(analysis["judgement"]["seeds"]),
        detection_epochs=str(DETECTION_EPOCHS),
        judgement_table=judgement_table(rows),
        movement_table=movement_table(rows),
        clean_table=clean_table(rows),
        attack_table=attack_table(rows),
        plot=plot,
    )
