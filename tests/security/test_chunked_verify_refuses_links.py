"""`stakelearn verify` of a chunked round folder follows no link and opens no special file, at any
depth, as the one-proof and accuracy checks (security review, finding 7). Before, a chunk folder
that was a link to a proven chunk elsewhere verified, and a FIFO in place of a top-level file
blocked the verifier."""

import os
import shutil
import subprocess
import sys

import pytest

from stakelearn.prover.chunked import ChunkCircuit
from stakelearn.prover.chunked_round import CHUNKS, COMBINE, prove_chunked_round, verify_chunked_round
from stakelearn.prover.steps import PROOF

CHUNK = ChunkCircuit(5, 1, 3, 8, 128, num_inner_cols=4)  # the session's 16-coordinate updates in 2 chunks


@pytest.fixture(scope="module")
def chunked_round(tmp_path_factory, small_updates):
    folder = tmp_path_factory.mktemp("chunked") / "round"
    prove_chunked_round(small_updates, CHUNK, folder)
    return folder


def verify_cli(folder):
    """`stakelearn verify` in a child with a time limit: a verifier blocked on a FIFO fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", "verify", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def link_a_chunk_folder(folder, elsewhere):
    """chunk-00001 replaced by a link to a copy of the same proven chunk outside the folder."""
    target = elsewhere / "chunk-00001"
    shutil.move(folder / CHUNKS / "chunk-00001", target)
    os.symlink(target, folder / CHUNKS / "chunk-00001")
    return folder / CHUNKS / "chunk-00001"


def link_the_chunks_folder(folder, elsewhere):
    shutil.move(folder / CHUNKS, elsewhere / CHUNKS)
    os.symlink(elsewhere / CHUNKS, folder / CHUNKS)
    return folder / CHUNKS


def link_a_proof_file(folder, elsewhere):
    shutil.move(folder / COMBINE / PROOF, elsewhere / PROOF)
    os.symlink(elsewhere / PROOF, folder / COMBINE / PROOF)
    return folder / COMBINE / PROOF


def fifo_for_a_top_level_file(folder, elsewhere):
    (folder / "public.json").unlink()
    os.mkfifo(folder / "public.json")
    return folder / "public.json"


def fifo_in_a_chunk_folder(folder, elsewhere):
    (folder / CHUNKS / "chunk-00000" / "input.json").unlink()
    os.mkfifo(folder / CHUNKS / "chunk-00000" / "input.json")
    return folder / CHUNKS / "chunk-00000" / "input.json"


@pytest.mark.parametrize(
    "plant",
    [link_a_chunk_folder, link_the_chunks_folder, link_a_proof_file, fifo_for_a_top_level_file, fifo_in_a_chunk_folder],
)
def test_verify_refuses_a_link_or_special_file_anywhere_in_a_chunked_folder(chunked_round, tmp_path, plant):
    folder, elsewhere = tmp_path / "round", tmp_path / "elsewhere"
    shutil.copytree(chunked_round, folder)
    elsewhere.mkdir()
    verify_chunked_round(folder)  # the copy verifies before anything is planted
    planted = plant(folder, elsewhere)
    result = verify_cli(folder)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{planted} is not a regular file or folder" in lines[0]
