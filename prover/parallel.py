"""The chunk proofs of a round, proven side by side: a local pool of processes, or Ray tasks.

The chunks of a round share one circuit and one proving key and do not depend on each other,
so any number of them can be proven at once. Chunk ``k``'s proof goes to
``folder/chunk-{k:05d}/`` (``input.json``, ``proof.json``), each folder written under a
temporary name and renamed once its proof verifies, so a half-written chunk never looks done.
A folder that already holds a verified proof of the same chunk is kept: a killed prover,
run again, proves only what is missing.

Locally, ``workers`` processes each prove one chunk at a time. On a Ray cluster
(``ray_address``), each chunk is a task declaring its memory and CPUs and retried elsewhere if
its node dies. The proving key, compiled circuit, settings, verifying key and SRS go into Ray's
object store once, and each node copies them into its own cache (``$STAKELEARN_HOME/shipped/
<digest>/``) the first time one of its tasks needs them: a node does not read the driver's disk.
A task returns its proof folder's files; the driver writes and verifies the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from stakelearn.circuits.chunk import chunk_round, split_chunks, split_vector, tag_slices
from stakelearn.errors import InputError, ProofError, StakeLearnError
from stakelearn.files import atomic_dir, write_bytes_atomic
from stakelearn.progress import show_progress
from stakelearn.prover import steps
from stakelearn.prover.chunked import ChunkOutcome, chunk_input_json, prove_chunk, verify_chunk
from stakelearn.prover.circuit import PreparedCircuit, estimated_peak_mb, memory_budget_mb
from stakelearn.prover.isolate import StepStats
from stakelearn.prover.publish import publishing
from stakelearn.prover.srs import Srs, stakelearn_home

log = logging.getLogger(__name__)

# A worker process holds torch and ezkl (about 300 MB) and its prove step's child re-imports as
# much: the part of a chunk's memory that does not grow with the circuit.
PROCESS_OVERHEAD_MB = 640
# Ray re-runs a task whose worker or node died this many times, on whatever node is alive.
TASK_RETRIES = 3
SRS_NAME = "kzg.srs"
SHIPPED = "shipped"
SCRATCH = "scratch"
# The files of a chunk folder, all a verifier needs beside the circuit's verifying files.
CHUNK_FILES = (steps.INPUT, steps.PROOF)


@dataclass(frozen=True)
class ChunkJob:
    """One chunk to prove: its index in the round, the ``[n, C + 1]`` tagged slices, the
    claimed sum's ``[C]`` slice and the round's ``[n]`` selection mask."""

    index: int
    tagged: np.ndarray
    claimed: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class ChunkStats:
    """How one chunk proven by this run went: its proving step's seconds, where it ran, the
    seconds its node spent receiving the circuit's files (0 when that node had them), and the
    peak memory of the process that ran the proving step."""

    prove_seconds: float
    node: str
    ship_seconds: float = 0.0
    prove_peak_mb: float = 0.0


def chunk_jobs(
    updates: np.ndarray, claimed_total: np.ndarray, mask: np.ndarray, chunk: int, absent: np.ndarray | None = None
) -> list[ChunkJob]:
    """The jobs of a round: ``[n, d]`` updates and the claimed ``[d]`` sum in chunks of ``chunk``
    coordinates (the last zero-padded), each slice tagged with its slot."""
    parts = zip(split_chunks(updates, chunk), split_vector(claimed_total, chunk))
    bits = np.asarray(mask).astype(np.int64)
    return [ChunkJob(k, tag_slices(slices, absent), part, bits) for k, (slices, part) in enumerate(parts)]


def chunk_folder(folder: Path, index: int) -> Path:
    return folder / f"chunk-{index:05d}"


def chunk_memory_mb(prepared: PreparedCircuit) -> int:
    """What proving one chunk needs: the prover's estimated peak plus the processes' own."""
    return math.ceil(estimated_peak_mb(prepared.logrows, prepared.circuit.num_inner_cols)) + PROCESS_OVERHEAD_MB


def local_workers(memory_mb: int, pending: int, budget_mb: float, cores: int) -> int:
    """As many workers as the memory budget holds chunks, at most one per core and per chunk."""
    return max(1, min(cores, int(budget_mb // memory_mb), pending))


def prove_chunks(
    prepared: PreparedCircuit,
    jobs: list[ChunkJob],
    folder: Path,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    memory_mb: int | None = None,
    cpus_per_chunk: int = 1,
    stats: dict[int, ChunkStats] | None = None,
    say: Callable[[str], None] = log.info,
) -> list[ChunkOutcome]:
    """Prove ``jobs`` with ``prepared`` (a chunk circuit) into ``folder``, keeping the chunks
    already proven there; return every job's outcome, in the jobs' order.

    Without ``ray_address``, ``workers`` local processes (default: what the memory budget and
    the cores allow) prove a chunk each at a time. With one (``"auto"`` or ``"host:port"``),
    each chunk is a Ray task of ``memory_mb`` (default :func:`chunk_memory_mb`) and
    ``cpus_per_chunk`` CPUs, and the prover of a chunk uses that many threads. Chunks proven by
    this call are recorded in ``stats``; a line per chunk done goes to ``say``."""
    if len({job.index for job in jobs}) != len(jobs):
        raise InputError("two chunk jobs share an index")
    if cpus_per_chunk < 1 or (workers is not None and workers < 1):
        raise InputError(f"workers and cpus_per_chunk must be >= 1, got {workers} and {cpus_per_chunk}")
    memory_mb = chunk_memory_mb(prepared) if memory_mb is None else memory_mb
    if memory_mb < 1:
        raise InputError(f"memory_mb must be >= 1, got {memory_mb}")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder)
    outcomes = {job.index: kept for job in jobs if (kept := kept_outcome(prepared, job, folder)) is not None}
    pending = [job for job in jobs if job.index not in outcomes]
    if outcomes:
        say(f"chunks: {len(outcomes)}/{len(jobs)} already proven in {folder}, kept")
    if pending:
        progress = _Progress(len(jobs), len(outcomes), say)
        stats = {} if stats is None else stats
        if ray_address is None:
            cores = os.cpu_count() or 1
            count = workers or local_workers(memory_mb, len(pending), memory_budget_mb(), cores)
            _prove_locally(prepared, pending, folder, count, max(1, cores // count), outcomes, stats, progress)
        else:
            _prove_on_ray(prepared, pending, folder, ray_address, memory_mb, cpus_per_chunk, outcomes, stats, progress)
    return [outcomes[job.index] for job in jobs]


def _remove_leftovers(folder: Path) -> None:
    """The temporary chunk folders a killed run left (see atomic_dir): never a proven chunk."""
    for leftover in folder.glob(".chunk-*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def kept_outcome(prepared: PreparedCircuit, job: ChunkJob, folder: Path) -> ChunkOutcome | None:
    """The outcome of chunk ``job``'s folder if it exists (None if not): its proof must verify
    and be the proof of this job's inputs, else ProofError (a folder is never deleted here)."""
    target = chunk_folder(folder, job.index)
    if not target.exists():
        return None
    try:
        outcome = verify_chunk(prepared, target)
        inputs = json.loads((target / steps.INPUT).read_text())
    except (StakeLearnError, OSError, ValueError) as error:
        raise ProofError(
            f"{target} holds no valid chunk proof ({error}); remove it to prove chunk {job.index} again"
        ) from None
    reference = chunk_round(job.tagged, job.claimed, job.mask, prepared.circuit.m)
    claims = (outcome.gram, outcome.mask, outcome.absent)
    expected = (reference.gram.tolist(), reference.mask.tolist(), reference.absent.tolist())
    if inputs != chunk_input_json(job.tagged, job.claimed, job.mask) or claims != expected:
        raise ProofError(
            f"{target} holds the proof of other inputs than chunk {job.index}'s; remove it or choose another folder"
        )
    return outcome


class _Progress:
    def __init__(self, total: int, done: int, say: Callable[[str], None]) -> None:
        self.total, self.done, self.say = total, done, say
        self.start = time.perf_counter()

    def chunk_done(self, index: int, chunk: ChunkStats) -> None:
        self.done += 1
        shipped = f", circuit shipped in {chunk.ship_seconds:.1f} s" if chunk.ship_seconds else ""
        self.say(
            f"chunks: {self.done}/{self.total} proven (chunk {index} on {chunk.node} in "
            f"{chunk.prove_seconds:.1f} s{shipped}), {time.perf_counter() - self.start:.0f} s elapsed"
        )


# --- a local pool ---------------------------------------------------------------------------


def _limit_threads(threads: int) -> None:
    """In each pool worker: the prover's thread pool (rayon) shares the cores between workers,
    and its progress shows on the stderr it shares with the parent."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    show_progress()


def _prove_into(prepared: PreparedCircuit, job: ChunkJob, final: Path) -> tuple[ChunkOutcome, StepStats]:
    """Prove ``job`` into the new folder ``final``, which appears only once its proof verified."""
    stats = {}
    with atomic_dir(final) as staging:
        staging.rmdir()  # prove_chunk makes its folder itself (it refuses one that exists)
        outcome = prove_chunk(prepared, job.tagged, job.claimed, job.mask, staging, stats)
    return outcome, stats["prove"]


def _prove_locally(prepared, pending, folder, workers, threads, outcomes, stats, progress) -> None:
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        running = {pool.submit(_prove_into, prepared, job, chunk_folder(folder, job.index)): job for job in pending}
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        outcomes[job.index], step = future.result()
                    except BrokenProcessPool:
                        raise ProofError(f"chunk {job.index}: a worker process of the pool died") from None
                    stats[job.index] = ChunkStats(step.seconds, "local", prove_peak_mb=step.peak_mb)
                    progress.chunk_done(job.index, stats[job.index])
        except BaseException:
            for future in running:  # the chunks not started yet; those running finish first
                future.cancel()
            raise


# --- a Ray cluster --------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedCircuit:
    """The files a node needs to prove and verify a chunk, in Ray's object store (``refs``, by
    file name), and the digest of their bytes that names the node's cache folder."""

    digest: str
    refs: dict
    logrows: int
    insecure: bool


@dataclass(frozen=True)
class RemoteProof:
    files: dict[str, bytes]
    prove_seconds: float
    ship_seconds: float
    node: str
    prove_peak_mb: float = 0.0


def circuit_files(prepared: PreparedCircuit) -> dict[str, Path]:
    return {
        steps.SETTINGS: prepared.settings,
        steps.COMPILED: prepared.compiled,
        steps.PK: prepared.pk,
        steps.VK: prepared.vk,
        SRS_NAME: prepared.srs.path,
    }


def files_digest(contents: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(contents):
        digest.update(f"{name}\0{hashlib.sha256(contents[name]).hexdigest()}\0".encode())
    return digest.hexdigest()[:16]


def node_prepared(prepared_circuit, shipped: ShippedCircuit, folder: Path) -> PreparedCircuit:
    """The prepared circuit of files materialised in ``folder`` (model and keys side by side)."""
    srs = Srs(path=folder / SRS_NAME, logrows=shipped.logrows, insecure=shipped.insecure)
    return PreparedCircuit(circuit=prepared_circuit, model_dir=folder, key_dir=folder, srs=srs)


def _materialise(ray, shipped: ShippedCircuit) -> tuple[Path, float]:
    """This node's copy of the shipped files, fetched from the object store on first use; the
    seconds spent fetching (0 if the node had them)."""
    folder = stakelearn_home() / SHIPPED / shipped.digest
    if folder.exists():
        return folder, 0.0
    start = time.perf_counter()
    with publishing(folder) as staging:  # another task of this node may publish its copy first: a hit
        for name, ref in shipped.refs.items():
            write_bytes_atomic(staging / name, ray.get(ref))
    return folder, time.perf_counter() - start


def _prove_on_node(circuit, shipped: ShippedCircuit, job: ChunkJob, threads: int) -> RemoteProof:
    """A Ray task: prove ``job`` on this node, in a scratch folder of its own cache."""
    import ray

    show_progress()  # into the node's worker log

    os.environ["RAYON_NUM_THREADS"] = str(threads)  # the CPUs the task declared
    model, ship_seconds = _materialise(ray, shipped)
    prepared = node_prepared(circuit, shipped, model)
    scratch_root = stakelearn_home() / SCRATCH
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix=f".chunk-{job.index:05d}.tmp-"))
    try:
        stats = {}
        proof = scratch / "chunk"
        prove_chunk(prepared, job.tagged, job.claimed, job.mask, proof, stats)
        files = {name: (proof / name).read_bytes() for name in CHUNK_FILES}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    node = ray.util.get_node_ip_address()
    return RemoteProof(files, stats["prove"].seconds, ship_seconds, node, stats["prove"].peak_mb)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("proving on a Ray cluster needs Ray: pip install 'stakelearn[ray]'") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` address must answer a TCP connection: Ray would otherwise retry for a minute."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"a Ray address is 'auto' or host:port, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise InputError(f"no Ray cluster answers at {address}: {error.strerror or error}") from None


def _connect(ray, address: str) -> bool:
    """Connect this process to the cluster at ``address``; True if this call connected it."""
    if ray.is_initialized():
        return False
    # Nothing leaves the cluster: no usage statistics, no dashboard.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as error:
        raise InputError(
            f"cannot connect to the Ray cluster at {address} (a cluster with token auth needs "
            f"RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN_PATH set before this command starts): "
            f"{' '.join(str(error).split())}"
        ) from None
    return True


def check_capacity(nodes: list[dict], memory_mb: int, cpus: int) -> None:
    """Some live node must offer a chunk task's memory and CPUs, else Ray would wait forever."""
    fits = [
        n
        for n in nodes
        if n.get("Alive")
        and n["Resources"].get("memory", 0) >= memory_mb * 2**20
        and n["Resources"].get("CPU", 0) >= cpus
    ]
    if not fits:
        raise InputError(
            f"no node of the Ray cluster offers {memory_mb} MB and {cpus} CPU for a chunk: "
            "lower memory_mb or cpus_per_chunk, or add a larger node"
        )


def ship_circuit(ray, prepared: PreparedCircuit) -> ShippedCircuit:
    contents = {name: path.read_bytes() for name, path in circuit_files(prepared).items()}
    return ShippedCircuit(
        digest=files_digest(contents),
        refs={name: ray.put(data) for name, data in contents.items()},
        logrows=prepared.srs.logrows,
        insecure=prepared.srs.insecure,
    )


def _task_failure(ray, error: BaseException, index: int) -> StakeLearnError:
    """One line for a chunk task that failed: the task's own StakeLearnError as it was raised."""
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, StakeLearnError):
        return error.cause
    message = " ".join(str(error).split())[:300]
    return ProofError(
        f"chunk {index} failed on the Ray cluster after {TASK_RETRIES} retries: {type(error).__name__}: {message}"
    )


def _prove_on_ray(prepared, pending, folder, address, memory_mb, cpus, outcomes, stats, progress) -> None:
    ray = _import_ray()
    connected_here = _connect(ray, address)
    try:
        check_capacity(ray.nodes(), memory_mb, cpus)
        shipped = ship_circuit(ray, prepared)
        task = ray.remote(_prove_on_node).options(num_cpus=cpus, memory=memory_mb * 2**20, max_retries=TASK_RETRIES)
        running = {task.remote(prepared.circuit, shipped, job, cpus): job for job in pending}
        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                job = running.pop(done[0])
                try:
                    result: RemoteProof = ray.get(done[0])
                except ray.exceptions.RayError as error:
                    raise _task_failure(ray, error, job.index) from None
                with atomic_dir(chunk_folder(folder, job.index)) as staging:
                    for name, data in result.files.items():
                        write_bytes_atomic(staging / name, data)
                    outcomes[job.index] = verify_chunk(prepared, staging)  # before it is named done
                stats[job.index] = ChunkStats(
                    result.prove_seconds, result.node, result.ship_seconds, result.prove_peak_mb
                )
                progress.chunk_done(job.index, stats[job.index])
        finally:
            for ref in running:  # after a failure: stop the chunks still queued or running
                ray.cancel(ref, force=True)
    finally:
        if connected_here:
            ray.shutdown()
