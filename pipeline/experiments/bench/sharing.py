"""Whether other work shared the machine while a bench ran: it inflates the seconds measured (not
the gas). The arithmetic is pure (:func:`others_cores`, :func:`sharing_note`); the readings of
/proc and of our own CPU time are at the edge (:class:`SharingMonitor`)."""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Other work on the machine above this many cores inflates the seconds measured (not the gas).
SHARED_CORES = 0.5


def others_cores(machine_busy_s: float, ours_s: float, wall_s: float) -> float:
    """The cores other processes kept busy over ``wall_s``: the machine's busy CPU seconds less ours."""
    return max(0.0, (machine_busy_s - ours_s) / wall_s) if wall_s > 0 else 0.0


def sharing_note(sharing: dict) -> str | None:
    """A line for the report when other work shared the machine: seconds are then inflated (gas is not)."""
    cores, before, others = sharing["cores"], sharing["load_average_before"], sharing["others_cores_max"]
    if before <= SHARED_CORES * cores and others <= SHARED_CORES:
        return None
    return (
        f"other jobs shared the machine (load average {before:.1f} on {cores} cores before the run; other processes "
        f"took up to {others:.1f} cores during a job): seconds are inflated, gas is not"
    )


def cpu_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat; 0 where there is none)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def our_cpu_seconds() -> float:
    """CPU seconds of this process and of every descendant it (and they) waited for: a job's whole tree."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class SharingMonitor:
    """How much of the machine other jobs took while ours ran. A load average counts our own
    prover too, so only the one taken before the run says whether others were at work; during a
    job, the machine's busy CPU time less our process tree's is theirs."""

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self.load_before = os.getloadavg()[0]
        self.per_job: list[float] = []
        if self.load_before > SHARED_CORES * self.cores:
            log.info(
                f"bench: load average {self.load_before:.1f} on {self.cores} cores before the run: other jobs are running"
            )
        self._start()

    def _start(self) -> None:
        self._busy, self._ours, self._wall = cpu_busy_seconds(), our_cpu_seconds(), time.perf_counter()

    def job_done(self) -> float:
        """The cores other processes used since the last job ended, said when it inflates seconds."""
        busy, ours, wall = cpu_busy_seconds(), our_cpu_seconds(), time.perf_counter()
        others = round(others_cores(busy - self._busy, ours - self._ours, wall - self._wall), 2)
        self.per_job.append(others)
        if others > SHARED_CORES:
            log.info(
                f"bench: other processes used {others:.1f} of {self.cores} cores during that job: its seconds are inflated"
            )
        self._start()
        return others

    def summary(self) -> dict:
        return {
            "cores": self.cores,
            "load_average_before": round(self.load_before, 2),
            "others_cores_max": max(self.per_job, default=0.0),
            "others_cores_per_job": self.per_job,
        }
