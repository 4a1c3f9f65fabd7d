"""Chunk proofs in a local pool of processes: a round proven in parallel is one round, a killed
run resumes at the chunks it had not proven, and a folder holding another chunk is refused."""

import os
import shutil

import pytest

from stakelearn.errors import InputError, ProofError
from stakelearn.prover.parallel import chunk_folder, local_workers, prove_chunks

from .chunked_round import check_round, chunk_circuit, round_jobs, round_updates

D = 20  # three chunks of 8, the last zero-padded


@pytest.fixture(scope="module")
def chunk():
    return chunk_circuit()


@pytest.fixture(scope="module")
def updates():
    return round_updates(D)


@pytest.fixture(scope="module")
def proven(chunk, updates, tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel") / "chunks"
    jobs = round_jobs(updates)
    stats = {}
    outcomes = prove_chunks(chunk, jobs, folder, workers=2, stats=stats)
    return folder, jobs, outcomes, stats


def test_pool_proves_a_round(chunk, updates, proven, tmp_path):
    folder, jobs, outcomes, stats = proven
    assert len(jobs) == 3
    assert sorted(stats) == [0, 1, 2]
    assert sorted(p.name for p in folder.iterdir()) == ["chunk-00000", "chunk-00001", "chunk-00002"]
    check_round(chunk, jobs, outcomes, updates, tmp_path)


def test_resume_proves_only_the_missing_chunk(chunk, updates, proven, tmp_path, capsys):
    """A run killed after two chunks (one folder missing, a staging leftover) proves the third alone."""
    folder, jobs, outcomes, _ = proven
    resumed = tmp_path / "chunks"
    shutil.copytree(folder, resumed)
    shutil.rmtree(chunk_folder(resumed, 1))
    leftover = resumed / ".chunk-00001.tmp-killed"
    leftover.mkdir()
    (leftover / "witness.json").write_text("{}")
    kept = {k: os.stat(chunk_folder(resumed, k)).st_mtime_ns for k in (0, 2)}
    stats = {}
    again = prove_chunks(chunk, jobs, resumed, stats=stats)
    assert sorted(stats) == [1]
    assert {k: os.stat(chunk_folder(resumed, k)).st_mtime_ns for k in (0, 2)} == kept
    assert not leftover.exists()
    assert again == outcomes
    assert "chunks: 2/3 already proven" in capsys.readouterr().err
    assert prove_chunks(chunk, jobs, resumed, stats=(nothing := {})) == outcomes and nothing == {}


def test_folder_of_another_chunk_is_refused(chunk, proven, tmp_path):
    folder, jobs, _, _ = proven
    moved = tmp_path / "chunks"
    moved.mkdir()
    shutil.copytree(chunk_folder(folder, 0), chunk_folder(moved, 1))
    with pytest.raises(ProofError, match="other inputs than chunk 1"):
        prove_chunks(chunk, jobs, moved)


def test_workers_fit_memory_and_cores():
    assert local_workers(memory_mb=1000, pending=10, budget_mb=3500, cores=8) == 3
    assert local_workers(memory_mb=1000, pending=10, budget_mb=9000, cores=2) == 2
    assert local_workers(memory_mb=1000, pending=1, budget_mb=9000, cores=8) == 1
    assert local_workers(memory_mb=9000, pending=4, budget_mb=1000, cores=8) == 1


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"), ("nowhere", "'auto' or host:port")],
)
def test_unreachable_ray_address_is_one_line(chunk, proven, tmp_path, address, message):
    _, jobs, _, _ = proven
    with pytest.raises(InputError, match=message):
        prove_chunks(chunk, jobs, tmp_path / "chunks", ray_address=address)
