"""`stakelearn bench`: reproducible figures for the proven round.

For each (n, d) point of a profile it measures the round circuit (`circuits/krum_module.py`)
and, as the baseline, the same computation written naively (`circuits/naive_krum.py`, ezkl's
defaults), plus the plain numpy Krum time:
rows, logrows, rows per update element (n*d), compile (settings and calibration), setup,
prove and verify seconds with each step's peak memory, proving key and proof size, the gas of
the reusable verifier alone and of the whole RoundVerifier check on the embedded EVM. It also
measures the accuracy proof (`circuits/accuracy.py`) for evaluation sets of the profile's sizes
(rows "accuracy": n is the number of samples, d their 64 pixels; "wrapper gas" is then the
AccuracyVerifier's check).

Each point is a job of the harness (its own process group under a time limit). Rows are
appended to ``results.jsonl`` as they come; ``results.json``, ``results.md`` and
``results.png`` are written at the end.

The ``chunked`` profile (rounds proven in chunks) is experiments.bench.chunked.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import MULTIKRUM, NNM_MULTIKRUM
from stakelearn.pipeline.experiments.bench import harness

log = logging.getLogger(__name__)

PROFILES = {
    # A minute or two: run by the test suite so the command cannot rot.
    "quick": {
        "points": [(4, 32), (5, 64)],
        "inner_cols": [8],
        "naive": [(4, 32)],
        "nnm": [(5, 64)],
        "accuracy": [8],
        "accuracy_bound": 512,
        "limit_s": 300,
    },
    # The README's table: the two reference points, and the accuracy proof for the
    # demo's evaluation set (64 samples) and for 100 and 360 samples.
    "standard": {
        "points": [(8, 256), (16, 1024)],
        "inner_cols": [8, 4],
        "naive": [(8, 256)],
        "nnm": [(8, 256), (16, 1024)],
        "accuracy": [64, 100, 360],
        "limit_s": 1800,
    },
    # Multi-Krum beside NNM + Multi-Krum at the reference point.
    "rules": {
        "points": [(16, 1024)],
        "inner_cols": [8],
        "naive": [],
        "nnm": [(16, 1024)],
        "accuracy": [],
        "limit_s": 1800,
    },
    # The accuracy proof alone: the demo's evaluation set (64 samples), 100 and 360.
    "accuracy": {"points": [], "inner_cols": [8], "naive": [], "accuracy": [64, 100, 360], "limit_s": 1800},
    # The full grid; points whose steps run over the limit are recorded as such.
    "full": {
        "points": [(n, d) for n in (4, 8, 16, 32) for d in (64, 256, 1024, 4096)],
        "inner_cols": [8],
        "naive": [(4, 64), (8, 64), (4, 256), (8, 256)],
        "nnm": [(8, 256), (16, 1024)],
        "accuracy": [64, 100, 360],
        "limit_s": 1800,
    },
}

# The proven round's variants and their aggregation rule; "naive" is the baseline, "accuracy"
# the accuracy proof.
RULE_BY_VARIANT = {"round": MULTIKRUM, "nnm": NNM_MULTIKRUM}

# The demo's models: m = 6 selected of 8, parameters within +-2 at scale 2^-9 (the quick
# profile takes a smaller bound: a smaller lookup table, a smaller k, a faster check).
ACCURACY_MODEL_BOUND = 6 * 1024

COLUMNS = [
    ("variant", "circuit"),
    ("n", "n"),
    ("d", "d"),
    ("inner_cols", "cols"),
    ("rows", "rows"),
    ("logrows", "k"),
    ("rows_per_element", "rows/elt"),
    ("compile_s", "compile s"),
    ("setup_s", "setup s"),
    ("setup_peak_mb", "setup MB"),
    ("prove_s", "prove s"),
    ("prove_peak_mb", "prove MB"),
    ("verify_s", "verify s"),
    ("pk_mb", "pk MB"),
    ("proof_bytes", "proof B"),
    ("verifier_gas", "verifier gas"),
    ("round_gas", "wrapper gas"),
    ("numpy_krum_s", "numpy s"),
    ("status", "status"),
]


# --- the math and the report: pure functions ------------------------------------------------


def jobs(spec: dict) -> list[tuple[str, int, int, int | None]]:
    """A profile's points as (variant, n, d, cells per row): the rounds by each rule, the naive
    baseline, the accuracy proof (n is the number of evaluation samples, d their 64 pixels)."""
    points = [("round", n, d, cols) for n, d in spec["points"] for cols in spec["inner_cols"]]
    points += [("naive", n, d, None) for n, d in spec["naive"]]
    points += [("nnm", n, d, cols) for n, d in spec.get("nnm", []) for cols in spec["inner_cols"]]
    return points + [("accuracy", samples, 64, None) for samples in spec["accuracy"]]


def results_table(rows: list[dict]) -> str:
    return harness.columns_table(COLUMNS, rows)


def ratio_lines(rows: list[dict]) -> list[str]:
    """Naive over proven-round ratios at the points where both finished, NNM + Multi-Krum over
    Multi-Krum, and proving over the plain numpy Krum."""
    ok = [r for r in rows if r["status"] == "ok"]
    by = {variant: [r for r in ok if r["variant"] == variant] for variant in ("naive", "round", "nnm")}
    lines = []
    for naive in by["naive"]:
        for ours in (r for r in by["round"] if (r["n"], r["d"]) == (naive["n"], naive["d"])):
            lines.append(
                f"n={ours['n']} d={ours['d']} cols={ours['inner_cols']}: naive/round rows {naive['rows'] / ours['rows']:.1f}x, "
                f"prove {naive['prove_s'] / ours['prove_s']:.1f}x, prove memory {naive['prove_peak_mb'] / ours['prove_peak_mb']:.1f}x"
            )
    for mixed in by["nnm"]:
        for plain in (r for r in by["round"] if _same_point(r, mixed)):
            lines.append(
                f"n={mixed['n']} d={mixed['d']} cols={mixed['inner_cols']}: NNM + Multi-Krum / Multi-Krum rows "
                f"{mixed['rows'] / plain['rows']:.3f}x, prove {mixed['prove_s'] / plain['prove_s']:.2f}x, "
                f"wrapper gas {mixed['round_gas'] / plain['round_gas']:.3f}x"
            )
    for ours in by["round"]:
        lines.append(
            f"n={ours['n']} d={ours['d']} cols={ours['inner_cols']}: proving takes {ours['prove_s'] / ours['numpy_krum_s']:,.0f}x the plain numpy Krum"
        )
    return lines


def _same_point(a: dict, b: dict) -> bool:
    return (a["n"], a["d"], a["inner_cols"]) == (b["n"], b["d"], b["inner_cols"])


def report(rows: list[dict], machine: dict) -> str:
    return "\n".join([results_table(rows), "", *ratio_lines(rows), "", "machine: " + json.dumps(machine)])


def figure(rows: list[dict]) -> harness.Figure:
    """Prove seconds and circuit rows against n·d, a line per circuit, n and cells per row (the
    accuracy proof has its own table rows, not a line)."""
    groups: dict[str, list[dict]] = {}
    order: dict[str, tuple[str, int]] = {}
    for row in rows:
        if row["status"] == "ok" and row["variant"] != "accuracy":
            label = {
                "naive": f"naive n={row['n']} (ezkl defaults)",
                "nnm": f"nnm n={row['n']}, {row['inner_cols']} cells/row",
            }.get(row["variant"], f"round n={row['n']}, {row['inner_cols']} cells/row")
            groups.setdefault(label, []).append(row)
            order[label] = (label.split()[0], row["n"])
    series = []
    for label in sorted(groups, key=order.__getitem__):
        items = sorted(groups[label], key=lambda r: r["n"] * r["d"])
        style = {"naive": "s--", "nnm": "^:"}.get(label.split()[0], "o-")
        x = [r["n"] * r["d"] for r in items]
        series.append(harness.Series(label, style, x, [r["prove_s"] for r in items], [r["rows"] for r in items]))
    return harness.Figure(series, ("prove seconds", "circuit rows"), "update elements n·d")


# --- one point, in its own process ----------------------------------------------------------


def measure_round(n: int, d: int, inner_cols: int, scratch: Path, rule: str = MULTIKRUM) -> dict:
    """The proven round by ``rule`` at one point."""
    from stakelearn.circuits.krum import krum_round
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.round_on_chain import deploy_round_verifier
    from stakelearn.pipeline.contracts.verifiers import verifier_only_gas, verify_on_chain
    from stakelearn.prover import steps
    from stakelearn.prover.circuit import RoundCircuit, prepare
    from stakelearn.prover.isolate import run_isolated
    from stakelearn.prover.round import COMMITMENTS, prove_round
    from stakelearn.prover.rounds import OneProofRound

    f, m = harness.krum_shape(n)
    circuit = RoundCircuit(n=n, f=f, m=m, d=d, max_int=harness.MAX_INT, num_inner_cols=inner_cols, rule=rule)
    updates = harness.sample_updates(n, d)
    stats: dict = {}
    round_dir = scratch / "round"
    prove_round(updates, circuit, round_dir, stats=stats)
    prepared = prepare(circuit)
    _, stats["verify"] = run_isolated(
        "verifying", steps.verify, round_dir / steps.PROOF, prepared.settings, prepared.vk, prepared.srs.path
    )
    start = time.perf_counter()
    krum_round(updates, circuit.params)
    numpy_s = time.perf_counter() - start
    commitments = json.loads((round_dir / COMMITMENTS).read_text())
    deployed = deploy_round_verifier(Chain.embedded(), OneProofRound(prepared))
    result = verify_on_chain(
        deployed, round_dir / steps.PROOF, prepared.vka, [*commitments["updates"], commitments["aggregate"]]
    )
    return {
        "rows": prepared.settings_json()["num_rows"],
        "logrows": prepared.logrows,
        **harness.step_columns(stats),
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads((round_dir / steps.PROOF).read_text())["proof"]),
        "verifier_gas": verifier_only_gas(deployed, round_dir / steps.PROOF, prepared.vka),
        "round_gas": result.gas_used if result.ok else None,
        "numpy_krum_s": round(numpy_s, 6),
    }


def measure_accuracy(samples: int, bound: int, scratch: Path) -> dict:
    """The accuracy proof for ``samples`` evaluation samples of the digits data and models within ``bound``."""
    from stakelearn.errors import ProofError
    from stakelearn.models.digits import load_digits_split
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.verifiers import verify_accuracy_on_chain
    from stakelearn.prover import steps
    from stakelearn.prover.accuracy import AccuracyCircuit, batch_folder, prove_accuracy
    from stakelearn.prover.circuit import prepare
    from stakelearn.prover.isolate import run_isolated

    circuit = AccuracyCircuit(samples, model_bound=bound)
    train, test = load_digits_split(0.2, seed=0)
    data = test if samples <= len(test) else train
    pixels, labels = np.rint(data.x[:samples] * 16).astype(np.int64), data.y[:samples]
    model = np.random.default_rng(samples).integers(-bound, bound + 1, size=650)
    stats: dict = {}
    folder = scratch / "accuracy"
    prove_accuracy(model, pixels, labels, circuit, folder, stats=stats)
    prepared = prepare(circuit)
    proof = batch_folder(folder, 0) / steps.PROOF
    _, stats["verify"] = run_isolated(
        "verifying", steps.verify, proof, prepared.settings, prepared.vk, prepared.srs.path
    )
    try:
        gas, evm = verify_accuracy_on_chain(folder, Chain.embedded()), "ok"
    except ProofError as error:  # the public evaluation set can outgrow a transaction's gas
        gas, evm = None, str(error)
    return {
        "rows": prepared.settings_json()["num_rows"],
        "logrows": prepared.logrows,
        **harness.step_columns(stats),
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads(proof.read_text())["proof"]),
        "round_gas": gas,
        "evm": evm,
    }


def measure_naive(n: int, d: int, scratch: Path) -> dict:
    """The naive baseline at one point: ezkl defaults, public inputs, no EVM."""
    from stakelearn.circuits.krum import KrumParams, krum_round
    from stakelearn.circuits.naive_krum import export_naive_onnx
    from stakelearn.files import write_json_atomic
    from stakelearn.prover import steps
    from stakelearn.prover.isolate import run_isolated
    from stakelearn.prover.srs import local_insecure_srs

    f, m = harness.krum_shape(n)
    params = KrumParams(n, f, m)
    updates = harness.sample_updates(n, d)
    folder = scratch / "naive"
    folder.mkdir(parents=True, exist_ok=True)
    network = export_naive_onnx(params, d, folder / steps.NETWORK)
    data = folder / steps.INPUT
    write_json_atomic(data, {"input_data": [(row / harness.MAX_INT).tolist() for row in updates]})
    compiled, pk, vk, witness, proof = (
        folder / name for name in (steps.COMPILED, steps.PK, steps.VK, steps.WITNESS, steps.PROOF)
    )
    stats: dict = {}
    _, stats["compile"] = run_isolated("naive: settings and calibration", _naive_compile, network, data, folder)
    settings = json.loads((folder / steps.SETTINGS).read_text())
    srs = local_insecure_srs(settings["run_args"]["logrows"]).path
    _, stats["setup"] = run_isolated("naive: setup", steps.setup, compiled, vk, pk, srs)
    steps.gen_witness(data, compiled, witness)
    _, stats["prove"] = run_isolated("naive: proving", steps.prove, witness, compiled, pk, proof, srs)
    _, stats["verify"] = run_isolated("naive: verifying", steps.verify, proof, folder / steps.SETTINGS, vk, srs)
    krum_round(updates, params)
    return {
        "rows": settings["num_rows"],
        "logrows": settings["run_args"]["logrows"],
        **harness.step_columns(stats),
        "pk_mb": round(pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads(proof.read_text())["proof"]),
    }


def _naive_compile(network: Path, data: Path, folder: Path) -> None:
    import ezkl

    from stakelearn.prover import steps

    steps.gen_settings(network, folder / steps.SETTINGS, ezkl.PyRunArgs())
    steps.calibrate(data, network, folder / steps.SETTINGS, scales=None)
    steps.compile_circuit(network, folder / steps.COMPILED, folder / steps.SETTINGS)


def run_point(spec: dict) -> dict:
    """Measure one point (called in the point's own process)."""
    scratch = Path(spec["scratch"])  # a new folder inside run_bench's scratch folder
    harness.use_home(scratch / "home")
    n, d, variant = spec["n"], spec["d"], spec["variant"]
    if variant == "naive":
        measured = measure_naive(n, d, scratch)
    elif variant == "accuracy":
        measured = measure_accuracy(n, spec["bound"], scratch)
    else:
        measured = measure_round(n, d, spec["inner_cols"], scratch, rule=RULE_BY_VARIANT[variant])
    shutil.rmtree(scratch, ignore_errors=True)
    return measured


# --- the driver -----------------------------------------------------------------------------


def run_bench(
    profile: str, out: Path, limit_s: float | None = None, show: Callable[[str], None] = log.info
) -> harness.Outcome:
    """Measure ``profile``'s points into ``out``; ``show`` is told each point's table row as it ends."""
    spec = PROFILES[profile]
    limit = limit_s or spec["limit_s"]
    bound = spec.get("accuracy_bound", ACCURACY_MODEL_BOUND)
    journal = harness.Journal(out, show)
    rows = []
    with harness.scratch_folder(out) as scratch_root:
        for variant, n, d, cols in jobs(spec):
            log.info(f"bench: {variant} n={n} d={d}" + (f" cols={cols}" if cols else ""))
            point = {"variant": variant, "n": n, "d": d, "inner_cols": cols, "bound": bound}
            scratch = str(scratch_root / f"{variant}-{n}x{d}-{cols}")
            row = {**point, **harness.run_job_process({**point, "scratch": scratch}, limit, __name__)}
            if variant != "accuracy":
                row.pop("bound")
            if row.get("rows"):
                row["rows_per_element"] = round(row["rows"] / (n * d), 3)
            rows.append(row)
            journal.record(row, harness.table_line(COLUMNS, row))
    machine = harness.machine()
    results = {"profile": profile, "machine": machine, "points": rows}
    text = report(rows, machine)
    harness.write_results(out, results, text, figure(rows))
    return harness.Outcome(results, text, rows)


if __name__ == "__main__":
    harness.job_main(run_point)
