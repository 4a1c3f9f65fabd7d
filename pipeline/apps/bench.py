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

Each point runs in its own process group under a time limit: a point over the limit is
recorded as such instead of hanging, a crash loses only that point, and every step inside
runs in its own child so its peak memory is its own. Rows are appended to ``results.jsonl``
as they come; ``results.json``, ``results.md`` and ``results.png`` are written at the end.

The ``chunked`` profile (rounds proven in chunks) is pipeline.apps.chunked_bench.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.apps.tables import markdown_table

MAX_INT = FixedPoint().max_int  # the default fixed point: scale 2^-7, clip 1.0, so 128

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


def machine() -> dict:
    import ezkl

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_gb, 1), "ezkl": ezkl.__version__}


def krum_shape(n: int) -> tuple[int, int]:
    """The largest f Krum allows for n clients, and m = n - f."""
    f = (n - 3) // 2
    return f, n - f


def sample_updates(n: int, d: int) -> np.ndarray:
    return np.random.default_rng(n * 100_003 + d).integers(-MAX_INT, MAX_INT + 1, size=(n, d))


def measure_round(n: int, d: int, inner_cols: int, scratch: Path, rule: str = "multikrum") -> dict:
    """The proven round by ``rule`` at one point (runs inside the point's process)."""
    from stakelearn.circuits.krum import krum_round
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.verifiers import deploy_round_verifier, verifier_only_gas, verify_on_chain
    from stakelearn.prover import steps
    from stakelearn.prover.circuit import RoundCircuit, prepare
    from stakelearn.prover.isolate import run_isolated
    from stakelearn.prover.round import COMMITMENTS, prove_round

    f, m = krum_shape(n)
    circuit = RoundCircuit(n=n, f=f, m=m, d=d, max_int=MAX_INT, num_inner_cols=inner_cols, rule=rule)
    updates = sample_updates(n, d)
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
    deployed = deploy_round_verifier(Chain.embedded(), prepared)
    result = verify_on_chain(
        deployed, round_dir / steps.PROOF, prepared.vka, [*commitments["updates"], commitments["aggregate"]]
    )
    settings = prepared.settings_json()
    return {
        "rows": settings["num_rows"],
        "logrows": prepared.logrows,
        **_step_columns(stats),
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads((round_dir / steps.PROOF).read_text())["proof"]),
        "verifier_gas": verifier_only_gas(deployed, round_dir / steps.PROOF, prepared.vka),
        "round_gas": result.gas_used if result.ok else None,
        "numpy_krum_s": round(numpy_s, 6),
    }


# The demo's models: m = 6 selected of 8, parameters within +-2 at scale 2^-9 (the quick
# profile takes a smaller bound: a smaller lookup table, a smaller k, a faster check).
ACCURACY_MODEL_BOUND = 6 * 1024


def measure_accuracy(samples: int, bound: int, scratch: Path) -> dict:
    """The accuracy proof for ``samples`` evaluation samples of the digits data and models within
    ``bound`` (its own process)."""
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
    _, stats["verify"] = run_isolated(
        "verifying",
        steps.verify,
        batch_folder(folder, 0) / steps.PROOF,
        prepared.settings,
        prepared.vk,
        prepared.srs.path,
    )
    try:
        gas, evm = verify_accuracy_on_chain(folder, Chain.embedded()), "ok"
    except ProofError as error:  # the public evaluation set can outgrow a transaction's gas
        gas, evm = None, str(error)
    return {
        "rows": prepared.settings_json()["num_rows"],
        "logrows": prepared.logrows,
        **_step_columns(stats),
        "pk_mb": round(prepared.pk.stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads((batch_folder(folder, 0) / steps.PROOF).read_text())["proof"]),
        "round_gas": gas,
        "evm": evm,
    }


def measure_naive(n: int, d: int, scratch: Path) -> dict:
    """The naive baseline at one point: ezkl defaults, public inputs, no EVM."""
    from stakelearn.circuits.krum import KrumParams, krum_round
    from stakelearn.circuits.naive_krum import export_naive_onnx
    from stakelearn.prover import steps
    from stakelearn.prover.isolate import run_isolated
    from stakelearn.prover.srs import local_insecure_srs

    f, m = krum_shape(n)
    params = KrumParams(n, f, m)
    updates = sample_updates(n, d)
    scratch = scratch / "naive"
    scratch.mkdir(parents=True, exist_ok=True)
    network = export_naive_onnx(params, d, scratch / steps.NETWORK)
    data = scratch / steps.INPUT
    write_json_atomic(data, {"input_data": [(row / MAX_INT).tolist() for row in updates]})
    stats: dict = {}
    _, stats["compile"] = run_isolated("naive: settings and calibration", _naive_compile, network, data, scratch)
    settings = json.loads((scratch / steps.SETTINGS).read_text())
    srs = local_insecure_srs(settings["run_args"]["logrows"]).path
    _, stats["setup"] = run_isolated(
        "naive: setup", steps.setup, scratch / steps.COMPILED, scratch / steps.VK, scratch / steps.PK, srs
    )
    steps.gen_witness(data, scratch / steps.COMPILED, scratch / steps.WITNESS)
    _, stats["prove"] = run_isolated(
        "naive: proving",
        steps.prove,
        scratch / steps.WITNESS,
        scratch / steps.COMPILED,
        scratch / steps.PK,
        scratch / steps.PROOF,
        srs,
    )
    _, stats["verify"] = run_isolated(
        "naive: verifying", steps.verify, scratch / steps.PROOF, scratch / steps.SETTINGS, scratch / steps.VK, srs
    )
    krum_round(updates, params)
    return {
        "rows": settings["num_rows"],
        "logrows": settings["run_args"]["logrows"],
        **_step_columns(stats),
        "pk_mb": round((scratch / steps.PK).stat().st_size / 2**20, 1),
        "proof_bytes": len(json.loads((scratch / steps.PROOF).read_text())["proof"]),
    }


def _naive_compile(network: Path, data: Path, folder: Path) -> None:
    import ezkl

    from stakelearn.prover import steps

    steps.gen_settings(network, folder / steps.SETTINGS, ezkl.PyRunArgs())
    steps.calibrate(data, network, folder / steps.SETTINGS, scales=None)
    steps.compile_circuit(network, folder / steps.COMPILED, folder / steps.SETTINGS)


def _step_columns(stats: dict) -> dict:
    return {
        **{f"{name}_s": round(step.seconds, 2) for name, step in stats.items()},
        **{f"{name}_peak_mb": round(step.peak_mb) for name, step in stats.items()},
    }


def use_home(home: Path) -> None:
    """Compile and set up afresh in the scratch cache ``home`` (they are measured), but share the
    user's SRS files: generating an SRS is not part of proving a round."""
    from stakelearn.prover.srs import stakelearn_home

    srs_cache = stakelearn_home() / "srs"
    srs_cache.mkdir(parents=True, exist_ok=True)
    if not (home / "srs").exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "srs").symlink_to(srs_cache.resolve())
    os.environ["STAKELEARN_HOME"] = str(home)


def run_point(spec: dict) -> dict:
    """Measure one point (called in the point's own process)."""
    scratch = Path(spec["scratch"])  # a new folder inside run_bench's temporary one
    use_home(scratch / "home")
    n, d = spec["n"], spec["d"]
    if spec["variant"] == "naive":
        measured = measure_naive(n, d, scratch)
    elif spec["variant"] == "accuracy":
        measured = measure_accuracy(n, spec["bound"], scratch)
    elif spec["variant"] == "nnm":
        measured = measure_round(n, d, spec["inner_cols"], scratch, rule="nnm-multikrum")
    else:
        measured = measure_round(n, d, spec["inner_cols"], scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    return measured


def run_point_process(spec: dict, limit_s: float, module: str = "stakelearn.pipeline.apps.bench") -> dict:
    """Run one point in a new process group (``python -m module spec``, which prints its figures
    as JSON on its last line); kill the group at the time limit."""
    command = [sys.executable, "-m", module, json.dumps(spec)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True, text=True)
    try:
        out, _ = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"status": f"over the {limit_s:.0f} s limit"}
    if process.returncode != 0:
        return {"status": f"failed (exit {process.returncode})"}
    return {"status": "ok", **json.loads(out.strip().splitlines()[-1])}


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


def results_table(rows: list[dict]) -> str:
    return markdown_table([title for _, title in COLUMNS], [[row.get(key, "") for key, _ in COLUMNS] for row in rows])


def ratio_lines(rows: list[dict]) -> list[str]:
    """Naive over proven-round ratios at the points where both finished."""
    lines = []
    for naive in (r for r in rows if r["variant"] == "naive" and r["status"] == "ok"):
        for ours in (
            r
            for r in rows
            if r["variant"] == "round" and r["status"] == "ok" and (r["n"], r["d"]) == (naive["n"], naive["d"])
        ):
            lines.append(
                f"n={ours['n']} d={ours['d']} cols={ours['inner_cols']}: naive/round rows {naive['rows'] / ours['rows']:.1f}x, "
                f"prove {naive['prove_s'] / ours['prove_s']:.1f}x, prove memory {naive['prove_peak_mb'] / ours['prove_peak_mb']:.1f}x"
            )
    for mixed in (r for r in rows if r["variant"] == "nnm" and r["status"] == "ok"):
        for plain in (r for r in rows if r["variant"] == "round" and r["status"] == "ok" and _same_point(r, mixed)):
            lines.append(
                f"n={mixed['n']} d={mixed['d']} cols={mixed['inner_cols']}: NNM + Multi-Krum / Multi-Krum rows "
                f"{mixed['rows'] / plain['rows']:.3f}x, prove {mixed['prove_s'] / plain['prove_s']:.2f}x, "
                f"wrapper gas {mixed['round_gas'] / plain['round_gas']:.3f}x"
            )
    for ours in (r for r in rows if r["variant"] == "round" and r["status"] == "ok"):
        lines.append(
            f"n={ours['n']} d={ours['d']} cols={ours['inner_cols']}: proving takes {ours['prove_s'] / ours['numpy_krum_s']:,.0f}x the plain numpy Krum"
        )
    return lines


def _same_point(a: dict, b: dict) -> bool:
    return (a["n"], a["d"], a["inner_cols"]) == (b["n"], b["d"], b["inner_cols"])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = {}
    for row in rows:
        if row["status"] == "ok" and row["variant"] != "accuracy":  # the accuracy proof: its own table rows
            label = {
                "naive": f"naive n={row['n']} (ezkl defaults)",
                "nnm": f"nnm n={row['n']}, {row['inner_cols']} cells/row",
            }.get(row["variant"], f"round n={row['n']}, {row['inner_cols']} cells/row")
            groups.setdefault(label, []).append(row)
    for label, items in sorted(
        groups.items(), key=lambda item: (item[0].split()[0], int(item[0].split()[1][2:].rstrip(",")))
    ):
        items.sort(key=lambda r: r["n"] * r["d"])
        x = [r["n"] * r["d"] for r in items]
        style = {"naive": "s--", "nnm": "^:"}.get(label.split()[0], "o-")
        left.plot(x, [r["prove_s"] for r in items], style, label=label)
        right.plot(x, [r["rows"] for r in items], style, label=label)
    for axis, title in ((left, "prove seconds"), (right, "circuit rows")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("update elements n·d")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_bench(profile: str, out: Path, limit_s: float | None = None) -> list[dict]:
    spec = PROFILES[profile]
    limit = limit_s or spec["limit_s"]
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "results.jsonl"
    journal.unlink(missing_ok=True)
    jobs = [("round", n, d, cols) for n, d in spec["points"] for cols in spec["inner_cols"]]
    jobs += [("naive", n, d, None) for n, d in spec["naive"]]
    jobs += [("nnm", n, d, cols) for n, d in spec.get("nnm", []) for cols in spec["inner_cols"]]
    # Accuracy: n is the number of evaluation samples, d their 64 pixels.
    jobs += [("accuracy", samples, 64, None) for samples in spec["accuracy"]]
    bound = spec.get("accuracy_bound", ACCURACY_MODEL_BOUND)
    rows = []
    scratch_root = Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))  # ours alone, removed at the end
    for variant, n, d, cols in jobs:
        print(f"bench: {variant} n={n} d={d}" + (f" cols={cols}" if cols else ""), file=sys.stderr, flush=True)
        point = {
            "variant": variant,
            "n": n,
            "d": d,
            "inner_cols": cols,
            "bound": bound,
            "scratch": str(scratch_root / f"{variant}-{n}x{d}-{cols}"),
        }
        row = {**point, **run_point_process(point, limit)}
        row.pop("scratch")
        if variant != "accuracy":
            row.pop("bound")
        if row.get("rows"):
            row["rows_per_element"] = round(row["rows"] / (n * d), 3)
        rows.append(row)
        with journal.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(results_table([row]).splitlines()[-1], flush=True)
    shutil.rmtree(scratch_root, ignore_errors=True)
    write_json_atomic(out / "results.json", {"profile": profile, "machine": machine(), "points": rows})
    report = [results_table(rows), "", *ratio_lines(rows), "", "machine: " + json.dumps(machine())]
    write_bytes_atomic(out / "results.md", ("\n".join(report) + "\n").encode())
    plot(rows, out / "results.png")
    print("\n".join(report))
    return rows


if __name__ == "__main__":
    # One point, in its own process: print its measurements as the last line of stdout.
    measured = run_point(json.loads(sys.argv[1]))
    print(json.dumps(measured), flush=True)
