"""The round circuit's ezkl configuration and its artifact cache.

A :class:`RoundCircuit` fixes everything the proving and verifying keys depend on: the Krum
shape (n, f, m), the update length d, the value bound, the ezkl layout settings and the ezkl
version. Its digest names a folder of cached artifacts, so keys are set up once and reused by
every epoch of the same shape:

    $STAKELEARN_HOME/circuits/<digest>/            network.onnx settings.json model.compiled
    $STAKELEARN_HOME/circuits/<digest>/keys-<srs>/ pk.key vk.key vka.bytes

Each folder is built in a temporary folder and renamed into place (prover.publish), so an
interrupted setup leaves nothing half-written, and a process that finds another's finished
folder in place uses it (its digests checked).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import ezkl
import numpy as np

from stakelearn.circuits import krum_module, nnm_module
from stakelearn.circuits.krum import (
    MULTIKRUM,
    KrumParams,
    absent_distance,
    krum_round,
    max_selection_key,
    tagged_inputs,
    value_bound,
)
from stakelearn.errors import InputError
from stakelearn.files import write_json_atomic
from stakelearn.prover import steps
from stakelearn.prover.isolate import StepStats, run_isolated
from stakelearn.prover.publish import publishing
from stakelearn.prover.srs import Srs, resolve_srs, stakelearn_home


def source_digest(*modules) -> str:
    return hashlib.sha256("".join(inspect.getsource(m) for m in modules).encode()).hexdigest()[:16]


# The circuit's source is part of the digest: editing the graph never reuses old keys.
CIRCUIT_SOURCE_DIGEST = source_digest(krum_module)
NNM_SOURCE_DIGEST = source_digest(krum_module, nnm_module)

# ezkl's range-check table has decomp_base rows; 2^8 keeps small circuits at small logrows
# (only the n^2 comparisons are decomposed, so the extra legs cost little).
DECOMP_BASE = 2**8


def committed_integer_run_args(num_inner_cols: int, decomp_legs: int) -> ezkl.PyRunArgs:
    """ezkl settings shared by our circuits: KZG-committed integer inputs, public outputs."""
    args = ezkl.PyRunArgs()
    # Each input is KZG-committed on its own: a client's update, the model, ...
    args.input_visibility = "polycommit"
    args.output_visibility = "public"
    args.param_visibility = "fixed"
    # Integers at scale 0: every operation is exact, no rescaling.
    args.input_scale = 0
    args.param_scale = 0
    args.num_inner_cols = num_inner_cols
    args.decomp_base = DECOMP_BASE
    args.decomp_legs = decomp_legs
    # ezkl 23's Freivalds einsum returns its product as fresh, unconstrained values
    # (circuit/ops/layouts.rs `einsum`): a prover could feed other numbers to later ops.
    # Plain dot products are constrained cell by cell.
    args.disable_freivalds = True
    # Inputs are range-checked by the circuit's own lookup (see krum_module), which costs
    # far fewer rows than ezkl's digit decomposition of every input element.
    args.ignore_range_check_inputs_outputs = True
    return args


class Circuit(Protocol):
    """What the cache, ``prepare`` and the provers take of a circuit: the round circuit, the chunk
    and combine circuits of a round in chunks, and the accuracy circuit are each one. A frozen
    dataclass (its fields are its description), with ``num_inner_cols`` and ``min_logrows``."""

    num_inner_cols: int
    min_logrows: int

    @property
    def label(self) -> str: ...

    @property
    def digest(self) -> str:
        """The cache key: the digest of :meth:`description`."""

    @property
    def largest_input(self) -> int: ...

    @property
    def input_names(self) -> list[str]: ...

    @property
    def lookup_bound(self) -> int: ...

    @property
    def decomp_legs(self) -> int: ...

    def input_bounds(self) -> list[tuple[int, int]]: ...

    def description(self) -> dict: ...

    def export(self, path: Path) -> Path:
        """The circuit's torch module exported to ONNX at ``path``."""

    def run_args(self) -> ezkl.PyRunArgs: ...

    def calibration_input(self) -> dict: ...


@dataclass(frozen=True)
class RoundCircuit:
    """One proven Multi-Krum round shape and its ezkl layout.

    ``num_inner_cols`` packs that many cells per row: rows fall by that factor while columns
    (proof size, verifier gas) grow with it; see the benchmark in the README.
    """

    n: int
    f: int
    m: int
    d: int
    max_int: int
    num_inner_cols: int = 8
    # At least this many logrows: a task's round and accuracy circuits share one k, because a
    # vector's KZG commitment depends on k (and the SRS) only, so the accuracy proof's model
    # commitment equals the one the round proof put on chain.
    min_logrows: int = 0
    rule: str = MULTIKRUM  # circuits.krum.RULES

    def __post_init__(self) -> None:
        self.params  # noqa: B018 (KrumParams validates n, f, m and the rule)
        if self.d < 1:
            raise InputError(f"update length d must be >= 1, got {self.d}")
        if not 1 <= self.max_int <= 2**15:
            raise InputError(f"max_int must be in 1..32768, got {self.max_int}")
        if not 1 <= self.num_inner_cols <= 64:
            raise InputError(f"num_inner_cols must be in 1..64, got {self.num_inner_cols}")

    @property
    def params(self) -> KrumParams:
        return KrumParams(self.n, self.f, self.m, self.rule)

    @property
    def bound(self) -> int:
        return value_bound(self.params, self.max_int)

    @property
    def lookup_bound(self) -> int:
        """The range-check table's bound: the clip (see krum_module)."""
        return self.max_int

    @property
    def absent_distance(self) -> int:
        return absent_distance(self.params, self.d, self.max_int)

    @property
    def decomp_legs(self) -> int:
        return selection_legs(self.params, self.d, self.max_int)

    @property
    def label(self) -> str:
        return f"{self.rule} round circuit n={self.n} d={self.d}"

    @property
    def largest_input(self) -> int:
        return self.d + 1

    @property
    def input_names(self) -> list[str]:
        return krum_module.input_names(self.n)

    def input_bounds(self) -> list[tuple[int, int]]:
        """Each input's range, for :func:`check_input_range`: tagged updates within the clip (the
        circuit proves it), the claimed sum within ``m`` times it."""
        return [(-self.max_int, self.max_int)] * self.n + [(-self.bound, self.bound)]

    def export(self, path: Path) -> Path:
        module = nnm_module.NnmMultiKrumRound if self.params.mixes else krum_module.MultiKrumRound
        return krum_module.export_onnx(self.params, self.d, self.absent_distance, self.max_int, path, module)

    def calibration_input(self) -> dict:
        """Extreme values, and the most slots absent a round allows: calibration sizes for the worst case."""
        sample = self.calibration_matrix()
        absent = np.arange(self.n) >= self.n - self.params.allowed_absent
        sample[absent] = 0
        return input_json(
            tagged_inputs(sample, absent), krum_round(sample, self.params, absent, self.absent_distance).total
        )

    def description(self) -> dict:
        source = NNM_SOURCE_DIGEST if self.params.mixes else CIRCUIT_SOURCE_DIGEST
        description = circuit_description(f"{self.rule}-round-{source}", self)
        del description["rule"]  # the kind names it (and Multi-Krum circuits keep their digests)
        return description

    @property
    def digest(self) -> str:
        return description_digest(self.description())

    def run_args(self) -> ezkl.PyRunArgs:
        return committed_integer_run_args(self.num_inner_cols, self.decomp_legs)

    def calibration_matrix(self) -> np.ndarray:
        """Extreme-valued sample updates: calibration sizes ranges for the worst case."""
        rng = np.random.default_rng(0)
        return rng.choice([-self.max_int, 0, self.max_int], size=(self.n, self.d))


@dataclass(frozen=True)
class PreparedCircuit:
    """A circuit (round or accuracy) with its compiled model, SRS and keys on disk."""

    circuit: Circuit
    model_dir: Path
    key_dir: Path
    srs: Srs

    @property
    def settings(self) -> Path:
        return self.model_dir / steps.SETTINGS

    @property
    def compiled(self) -> Path:
        return self.model_dir / steps.COMPILED

    @property
    def pk(self) -> Path:
        return self.key_dir / steps.PK

    @property
    def vk(self) -> Path:
        return self.key_dir / steps.VK

    @property
    def vka(self) -> Path:
        return self.key_dir / steps.VKA

    @property
    def logrows(self) -> int:
        return self.srs.logrows

    def settings_json(self) -> dict:
        return json.loads(self.settings.read_text())

    def prove_in_child(self, what: str, folder: Path) -> StepStats:
        """Prove ``folder``'s witness into ``folder``'s proof, in a child process: its own peak
        memory, and the step time limit."""
        _, stats = run_isolated(
            what, steps.prove, folder / steps.WITNESS, self.compiled, self.pk, folder / steps.PROOF, self.srs.path
        )
        return stats


def selection_legs(params: KrumParams, d: int, max_int: int) -> int:
    """Enough base-2^8 digits to range-check every comparison of Multi-Krum's selection (its
    keys), for updates of ``d`` values within ``max_int``."""
    return math.ceil(max_selection_key(params, d, max_int).bit_length() / math.log2(DECOMP_BASE))


def circuit_description(kind: str, circuit: Circuit) -> dict:
    """What identifies a circuit config's build (its cache key and digest): the kind with its
    source digest, ezkl's version, the config's fields and the range-check decomposition."""
    return {
        "circuit": kind,
        "ezkl": steps.EZKL_VERSION,
        **asdict(circuit),
        "decomp_base": DECOMP_BASE,
        "decomp_legs": circuit.decomp_legs,
    }


def description_digest(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def input_json(tagged_updates: np.ndarray, claimed_sum: np.ndarray) -> dict:
    """ezkl's input file: one flat list per ONNX input (the tagged updates, then the claimed sum)."""
    return {"input_data": [row.tolist() for row in np.asarray(tagged_updates)] + [np.asarray(claimed_sum).tolist()]}


DESCRIPTION = "circuit.json"


def _build_model_dir(circuit: Circuit, folder: Path) -> None:
    write_json_atomic(folder / DESCRIPTION, {"label": circuit.label, **circuit.description()})
    network = circuit.export(folder / steps.NETWORK)
    settings = steps.gen_settings(network, folder / steps.SETTINGS, circuit.run_args())
    write_json_atomic(folder / steps.CALIBRATION, circuit.calibration_input())
    # Integer circuits run at scale 0; the ONNX accuracy circuit reads its inputs at its own scale.
    steps.calibrate(folder / steps.CALIBRATION, network, settings, scales=[getattr(circuit, "calibration_scale", 0)])
    # Calibration widens the lookup table to what it saw; the range check needs it exact.
    data = json.loads(settings.read_text())
    data["run_args"]["lookup_range"] = [-circuit.lookup_bound, circuit.lookup_bound]
    data["run_args"]["logrows"] = max(data["run_args"]["logrows"], circuit.min_logrows)
    write_json_atomic(settings, data)
    steps.compile_circuit(network, folder / steps.COMPILED, settings)
    _shrink_logrows(folder, circuit)


def _shrink_logrows(folder: Path, circuit: Circuit) -> None:
    """Calibration sizes logrows for the values it saw, before the lookup range was narrowed to
    the bound, so a smaller k often holds the circuit: keep the smallest whose mock run of the
    extreme-valued calibration input satisfies every constraint."""
    settings = folder / steps.SETTINGS
    data = json.loads(settings.read_text())
    floor = max(circuit.min_logrows, math.ceil(math.log2(data["num_rows"] + 1)))
    while data["run_args"]["logrows"] - 1 >= floor:
        trial = folder / "trial"
        trial.mkdir(exist_ok=True)
        smaller = {**data, "run_args": {**data["run_args"], "logrows": data["run_args"]["logrows"] - 1}}
        write_json_atomic(trial / steps.SETTINGS, smaller)
        steps.compile_circuit(folder / steps.NETWORK, trial / steps.COMPILED, trial / steps.SETTINGS)
        steps.gen_witness(folder / steps.CALIBRATION, trial / steps.COMPILED, trial / steps.WITNESS)
        if not steps.mock_passes(trial / steps.WITNESS, trial / steps.COMPILED):
            break
        data = smaller
        write_json_atomic(settings, data)
        os.replace(trial / steps.COMPILED, folder / steps.COMPILED)
    shutil.rmtree(folder / "trial", ignore_errors=True)


def _setup_keys(model: Path, srs: Path, keys: Path) -> None:
    steps.setup(model / steps.COMPILED, keys / steps.VK, keys / steps.PK, srs)
    steps.create_vka(keys / steps.VK, model / steps.SETTINGS, keys / steps.VKA, srs)


def model_dir(circuit: Circuit, stats: dict[str, StepStats] | None = None) -> Path:
    """The circuit's compiled model and settings, built on first use."""
    folder = stakelearn_home() / "circuits" / circuit.digest
    if not (folder / steps.COMPILED).exists():
        with publishing(folder) as tmp:  # another process's build, finished first, is a hit
            _, step = run_isolated(f"compiling {circuit.label}", _build_model_dir, circuit, tmp)
        if stats is not None:
            stats["compile"] = step
    return folder


def natural_logrows(circuit: Circuit) -> int:
    """The logrows ezkl's calibration picks for ``circuit`` on its own (no ``min_logrows``)."""
    settings = json.loads((model_dir(replace(circuit, min_logrows=0)) / steps.SETTINGS).read_text())
    return settings["run_args"]["logrows"]


def estimated_peak_mb(logrows: int, num_inner_cols: int) -> float:
    """An upper estimate of the prover's peak memory (MB), the larger of set-up and proving: an
    upper fit of the README's measurements (k=12 and 15 at 8 cells per row: 503 and 4,088 MB;
    k=13 and 16 at 4: 424 and 3,460 MB; k=18 at 1: 7,348 MB). Memory follows the rows (2^k) and
    the columns, which grow with the cells per row."""
    return 2**logrows * (0.02 + 0.0135 * num_inner_cols)


def memory_budget_mb() -> float:
    """What a prover process may use: ``$STAKELEARN_MEMORY_MB``, else the memory available now."""
    if "STAKELEARN_MEMORY_MB" in os.environ:
        try:
            return float(os.environ["STAKELEARN_MEMORY_MB"])
        except ValueError:
            raise InputError(
                f"STAKELEARN_MEMORY_MB must be a number of megabytes, got {os.environ['STAKELEARN_MEMORY_MB']!r}"
            ) from None
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return int(fields["MemAvailable"].split()[0]) / 1024


def check_fits(circuit: Circuit, settings: dict) -> None:
    """Refuse, before any key set-up, a circuit this machine cannot hold while proving."""
    logrows = settings["run_args"]["logrows"]
    needed, budget = estimated_peak_mb(logrows, circuit.num_inner_cols), memory_budget_mb()
    if needed > budget:
        raise InputError(
            f"{circuit.label} needs about {needed / 1024:.1f} GB to set up and prove ({settings['num_rows']:,} rows, "
            f"logrows {logrows}) and {budget / 1024:.1f} GB is available: use a smaller model or fewer clients per round, "
            "or more memory (STAKELEARN_MEMORY_MB overrides the budget)"
        )


def prepare(
    circuit: Circuit, ceremony_srs: Path | None = None, stats: dict[str, StepStats] | None = None
) -> PreparedCircuit:
    """Compile the circuit, resolve its SRS, and set up the keys and the VK artifact for the EVM,
    each only once per (circuit, SRS). Steps that ran are timed into ``stats``. A circuit whose
    estimated memory exceeds the budget is refused before its SRS and keys are made."""
    folder = model_dir(circuit, stats)
    settings = json.loads((folder / steps.SETTINGS).read_text())
    logrows = settings["run_args"]["logrows"]
    if circuit.largest_input >= 2**logrows - 16:
        raise InputError(f"an input of {circuit.largest_input} values does not fit one column at logrows {logrows}")
    check_fits(circuit, settings)
    srs = resolve_srs(logrows, ceremony_srs)
    key_dir = folder / f"keys-{srs.sha256()[:16]}"
    if not (key_dir / steps.VKA).exists():
        with publishing(key_dir) as tmp:
            _, step = run_isolated(
                f"setting up keys (logrows {logrows}, {srs.label})", _setup_keys, folder, srs.path, tmp
            )
        if stats is not None:
            stats["setup"] = step
    return PreparedCircuit(circuit=circuit, model_dir=folder, key_dir=key_dir, srs=srs)
