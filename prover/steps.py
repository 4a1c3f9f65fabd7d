"""ezkl's steps, each a function from files to files, with ezkl's own default file names.

ezkl 23 makes some calls async (``create_evm_verifier``, ``create_evm_vka``); :func:`_run`
awaits them here once so that the rest of the project calls plain functions. Every failure
becomes a :class:`ProofError` with ezkl's message on one line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import ezkl

from stakelearn.errors import ProofError

# ezkl logs through Python's logging (warnings such as "SRS for poly commit does not exist",
# which is expected with polycommit inputs); keep the terminal for StakeLearn's own lines.
logging.getLogger("ezkl").setLevel(logging.ERROR)

EZKL_VERSION = ezkl.__version__

NETWORK = "network.onnx"
SETTINGS = "settings.json"
CALIBRATION = "calibration.json"
COMPILED = "model.compiled"
PK = "pk.key"
VK = "vk.key"
INPUT = "input.json"
WITNESS = "witness.json"
PROOF = "proof.json"
VERIFIER_SOL = "Halo2VerifierReusable.sol"
VERIFIER_ABI = "Halo2VerifierReusable.abi"
VKA = "vka.bytes"


def _run(step: str, call, *args, **kwargs):
    try:
        result = asyncio.run(_call(call, *args, **kwargs))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # ezkl's Rust panics arrive as pyo3 PanicException
        message = " ".join(str(error).split()) or type(error).__name__
        raise ProofError(f"ezkl {step} failed: {message}") from error
    if result is False:
        raise ProofError(f"ezkl {step} failed")
    return result


async def _call(call, *args, **kwargs):
    # ezkl's async calls need a running event loop when they are called, not only when awaited.
    result = call(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def gen_settings(network: Path, settings: Path, run_args: ezkl.PyRunArgs) -> Path:
    _run("gen_settings", ezkl.gen_settings, str(network), str(settings), py_run_args=run_args)
    return settings


@contextmanager
def _output_silenced():
    """Silence file descriptors 1 and 2 (Rust writes there directly, past sys.stdout/stderr);
    failures still arrive as exceptions."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def calibrate(calibration: Path, network: Path, settings: Path, scales: list[int] | None) -> Path:
    """ezkl's calibration for resources; ``scales=None`` lets ezkl search its default scales. At a
    scale above 0 every product is rescaled back to it at once (rebase multiplier 1)."""
    # calibrate_settings prints a numerical-fidelity table; with scales fixed at 0 it says nothing.
    with _output_silenced():
        _run(
            "calibrate_settings",
            ezkl.calibrate_settings,
            str(calibration),
            str(network),
            str(settings),
            "resources",
            scales=scales,
            **({"scale_rebase_multiplier": [1]} if scales and scales[0] else {}),
        )
    return settings


def compile_circuit(network: Path, compiled: Path, settings: Path) -> Path:
    _run("compile_circuit", ezkl.compile_circuit, str(network), str(compiled), str(settings))
    return compiled


def mock_passes(witness: Path, compiled: Path) -> bool:
    """Whether the witness satisfies every constraint of the compiled circuit (no proof made)."""
    try:
        return bool(ezkl.mock(str(witness), str(compiled)))
    except Exception:  # ezkl reports unsatisfied constraints as a generic RuntimeError
        return False


def gen_srs(srs: Path, logrows: int) -> Path:
    _run("gen_srs", ezkl.gen_srs, str(srs), logrows)
    return srs


def setup(compiled: Path, vk: Path, pk: Path, srs: Path) -> tuple[Path, Path]:
    _run("setup", ezkl.setup, str(compiled), str(vk), str(pk), str(srs))
    return vk, pk


def gen_witness(data: Path, compiled: Path, witness: Path) -> dict:
    return _run("gen_witness", ezkl.gen_witness, str(data), str(compiled), str(witness))


def prove(witness: Path, compiled: Path, pk: Path, proof: Path, srs: Path) -> dict:
    return _run("prove", ezkl.prove, str(witness), str(compiled), str(pk), str(proof), str(srs))


def verify(proof: Path, settings: Path, vk: Path, srs: Path) -> bool:
    return bool(_run("verify", ezkl.verify, str(proof), str(settings), str(vk), str(srs)))


def kzg_commit(felts: list[str], vk: Path, settings: Path, srs: Path) -> list:
    return _run("kzg_commit", ezkl.kzg_commit, felts, str(vk), str(settings), str(srs))


def create_reusable_verifier(vk: Path, settings: Path, sol: Path, abi: Path, srs: Path) -> Path:
    _run(
        "create_evm_verifier",
        ezkl.create_evm_verifier,
        str(vk),
        str(settings),
        str(sol),
        str(abi),
        str(srs),
        reusable=True,
    )
    return sol


def create_vka(vk: Path, settings: Path, vka: Path, srs: Path) -> Path:
    _run("create_evm_vka", ezkl.create_evm_vka, str(vk), str(settings), str(vka), str(srs))
    return vka


def encode_calldata(proof: Path, calldata: Path, vka: Path) -> bytes:
    return bytes(_run("encode_evm_calldata", ezkl.encode_evm_calldata, str(proof), str(calldata), vka_path=str(vka)))


def felt_to_int(felt: str) -> int:
    """A little-endian hex field element as a signed integer."""
    return ezkl.felt_to_int(felt)
