"""Run a heavy ezkl step in a child process, with a time limit.

ezkl holds the GIL while it works, so a progress line can only tick from another process; a
child also gives the step's true peak memory and keeps a crash from taking the caller down.
It can also be stopped: ezkl's prover hangs (at near-zero CPU) on a witness outside its lookup
tables instead of failing, so every step is killed after ``STAKELEARN_STEP_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass

from stakelearn.errors import InputError, ProofError

log = logging.getLogger(__name__)

TICK_SECONDS = 10.0
TIMEOUT_VARIABLE = "STAKELEARN_STEP_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 3600.0
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class StepStats:
    seconds: float
    peak_mb: float


def _child(connection, function, args) -> None:
    try:
        result = function(*args)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        connection.send(("ok", result, peak_mb))
    except BaseException as error:  # sent to the parent, which re-raises it
        connection.send(("error", error, traceback.format_exc()))
    finally:
        connection.close()
    # The answer is sent: leave without the interpreter's finalization, which ezkl's threads can
    # crash after a key set-up ("Fatal Python error: PyGILState_Release"), printing a false alarm.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def step_timeout() -> float:
    """The time limit of one step, in seconds: ``STAKELEARN_STEP_TIMEOUT`` or an hour."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also refuses NaN
        raise InputError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return seconds


def _stop(process) -> None:
    """End our own child: politely, then for sure."""
    process.terminate()
    process.join(STOP_GRACE_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()


def run_isolated(label: str, function, *args, timeout: float | None = None):
    """Run ``function(*args)`` in a fresh process, printing progress; return (result, stats).
    The child is killed and ProofError raised after ``timeout`` seconds (default: step_timeout())."""
    timeout = step_timeout() if timeout is None else timeout
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, function, args), daemon=True)
    start = time.perf_counter()
    deadline = start + timeout
    log.info(f"{label} ...")
    process.start()
    try:
        child.close()
        while not parent.poll(max(0.0, min(TICK_SECONDS, deadline - time.perf_counter()))):
            if not process.is_alive():
                break
            if time.perf_counter() >= deadline:
                _stop(process)
                raise ProofError(
                    f"{label}: exceeded the time limit of {timeout:g} s and was stopped; "
                    f"if it needs longer, set {TIMEOUT_VARIABLE} to more seconds"
                )
            log.info(f"  {label}: {time.perf_counter() - start:.0f} s")
        try:
            message = parent.recv()
        except EOFError:
            message = ("error", ProofError(f"{label}: the worker process died (exit code {process.exitcode})"), "")
        process.join()
    finally:
        if process.is_alive():  # interrupted (Ctrl-C) or failed above: leave no child behind
            _stop(process)
        parent.close()
    seconds = time.perf_counter() - start
    if message[0] == "error":
        raise message[1]
    log.info(f"{label}: done in {seconds:.1f} s, peak {message[2]:.0f} MB")
    return message[1], StepStats(seconds=seconds, peak_mb=message[2])
