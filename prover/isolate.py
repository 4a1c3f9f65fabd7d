"""Run a heavy ezkl step in a child process.

ezkl holds the GIL while it works, so a progress line can only tick from another process; a
child also gives the step's true peak memory and keeps a crash from taking the caller down.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
import traceback
from dataclasses import dataclass

from stakelearn.errors import ProofError

TICK_SECONDS = 10.0


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


def run_isolated(label: str, function, *args):
    """Run ``function(*args)`` in a fresh process, printing progress; return (result, stats)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, function, args), daemon=True)
    start = time.perf_counter()
    print(f"{label} ...", file=sys.stderr, flush=True)
    process.start()
    child.close()
    while not parent.poll(TICK_SECONDS):
        if not process.is_alive():
            break
        print(f"  {label}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    try:
        message = parent.recv()
    except EOFError:
        message = ("error", ProofError(f"{label}: the worker process died (exit code {process.exitcode})"), "")
    process.join()
    seconds = time.perf_counter() - start
    if message[0] == "error":
        raise message[1]
    print(f"{label}: done in {seconds:.1f} s, peak {message[2]:.0f} MB", file=sys.stderr, flush=True)
    return message[1], StepStats(seconds=seconds, peak_mb=message[2])
