"""What `stakelearn prove` takes as the update, run as a user runs it: one model layout for all
clients, 1-D .npy vectors, files (not folders), and a warning for every client the clip cuts."""

import subprocess
import sys

import numpy as np
import torch

from .test_cli import assert_one_line_error

D = 16


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def export(model, path, example):
    torch.onnx.export(model, example, str(path), dynamo=False)
    return path


def test_prove_refuses_onnx_models_of_another_layout_with_the_same_length(tmp_path):
    # Linear(3, 4) and Linear(1, 8) both have 16 parameters: only the layout tells them apart.
    paths = []
    for i in range(5):
        torch.manual_seed(i)
        model, example = (
            (torch.nn.Linear(1, 8), torch.zeros(1, 1)) if i == 3 else (torch.nn.Linear(3, 4), torch.zeros(1, 3))
        )
        paths.append(export(model, tmp_path / f"c{i}.onnx", example))
    out = tmp_path / "round"
    result = run_cli("prove", *paths, "-f", "1", "--out", out)
    assert_one_line_error(
        result,
        "client 3 (c3.onnx): tensor 0 is 'weight' of shape (8, 1), but in client 0 (c0.onnx) "
        "it is 'weight' of shape (4, 3)",
    )
    assert not out.exists()


def test_prove_refuses_a_matrix_npy(tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"c{i}.npy")
        np.save(paths[-1], np.zeros((4, 4)) if i == 2 else np.zeros(D))
    out = tmp_path / "round"
    assert_one_line_error(
        run_cli("prove", *paths, "-f", "1", "--out", out),
        "c2.npy: a .npy update must be a 1-D vector, got shape (4, 4); save np.ravel(update) instead",
    )
    assert not out.exists()


def test_prove_says_a_folder_is_not_an_update(tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"c{i}.npy")
        np.save(paths[-1], np.zeros(D))
    folder = tmp_path / "updates"
    folder.mkdir()
    result = run_cli("prove", *paths, folder, "-f", "1", "--out", tmp_path / "round")
    assert_one_line_error(result, "is a directory; an UPDATE is a client's .onnx model or .npy vector file")


def test_prove_warns_of_clipped_values_per_client_and_proves(tmp_path, small_updates):
    paths = []
    for i, row in enumerate(small_updates):
        values = row / 128.0
        if i == 4:
            values = values * 3  # the far client: most of its values beyond +-1
        paths.append(tmp_path / f"client_{i}.npy")
        np.save(paths[-1], values)
    expected = int(np.count_nonzero(np.abs(np.rint(small_updates[4] * 3.0)) > 128))
    assert expected > 0
    out = tmp_path / "round"
    result = run_cli("prove", *paths, "-f", "1", "-m", "3", "--inner-cols", "4", "--out", out)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("stakelearn: warning:")]
    line = (
        f"stakelearn: warning: client 4 (client_4.npy): {expected} of {D} values "
        f"({100 * expected / D:.1f} %) beyond the clip ±1.0 were clipped; raise --clip"
    )
    assert warnings == [line]
    assert (out / "proof.json").exists() and "round proof written" in result.stdout
