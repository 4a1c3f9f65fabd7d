"""The prover CLI end to end, and its error paths: one line, non-zero exit, nothing written."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from stakelearn.pipeline.cli import main

D = 16


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", *map(str, args)], capture_output=True, text=True
    )


def test_prove_then_verify_locally_and_on_evm(update_files, tmp_path, small_circuit, capsys):
    out = tmp_path / "round"
    assert (
        main(
            [
                "prove",
                *map(str, update_files),
                "--byzantine",
                "1",
                "--select",
                "3",
                "--inner-cols",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "left out" in printed and "INSECURE" in printed
    for name in ("proof.json", "commitments.json", "public.json", "summary.txt", "round.json"):
        assert (out / name).exists()
    assert main(["verify", str(out)]) == 0
    assert main(["verify", str(out), "--evm"]) == 0
    assert "accepted the round" in capsys.readouterr().out


def test_prove_reads_onnx_models(tmp_path, capsys):
    paths = []
    for i in range(5):
        torch.manual_seed(i)
        model = torch.nn.Linear(3, 4)  # 12 weights + 4 biases = 16 parameters
        paths.append(tmp_path / f"client_{i}.onnx")
        torch.onnx.export(model, torch.zeros(1, 3), str(paths[-1]), dynamo=False)
    out = tmp_path / "round"
    assert main(["prove", *map(str, paths), "-f", "1", "-m", "3", "--inner-cols", "4", "--out", str(out)]) == 0
    assert "client_0.onnx" in capsys.readouterr().out


def assert_one_line_error(result, fragment):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stakelearn: error:") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_prove_missing_file(update_files, tmp_path):
    out = tmp_path / "round"
    result = run_cli("prove", *update_files[:4], tmp_path / "nope.npy", "-f", "1", "--out", out)
    assert_one_line_error(result, "no such file")
    assert not out.exists()


def test_prove_shapes_differ(update_files, tmp_path):
    np.save(update_files[2], np.zeros(D + 1))
    out = tmp_path / "round"
    assert_one_line_error(run_cli("prove", *update_files, "-f", "1", "--out", out), "differ in length")
    assert not out.exists()


def test_prove_nan(update_files, tmp_path):
    values = np.zeros(D)
    values[3] = np.nan
    np.save(update_files[1], values)
    out = tmp_path / "round"
    assert_one_line_error(run_cli("prove", *update_files, "-f", "1", "--out", out), "NaN")
    assert not out.exists()


def test_prove_too_few_clients(update_files, tmp_path):
    out = tmp_path / "round"
    assert_one_line_error(run_cli("prove", *update_files[:4], "-f", "1", "--out", out), "n > 2f + 2")
    assert not out.exists()


def test_prove_unreadable_onnx(update_files, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    out = tmp_path / "round"
    assert_one_line_error(run_cli("prove", *update_files[:4], broken, "-f", "1", "--out", out), "unreadable ONNX")
    assert not out.exists()


def test_prove_refuses_existing_output(update_files, tmp_path):
    out = tmp_path / "round"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_one_line_error(run_cli("prove", *update_files, "-f", "1", "--out", out), "already exists")
    assert (out / "keep.txt").read_text() == "mine"


def test_demo_refuses_a_folder_it_did_not_create(tmp_path):
    """A new run never empties --out: a folder with anything in it is refused, its files kept."""
    kept = tmp_path / "notes.txt"
    kept.write_text("mine")
    result = run_cli("demo", "--out", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"stakelearn: error: {tmp_path} already exists and is not empty: resume it with --resume, or choose another --out"
    ]
    assert kept.read_text() == "mine" and sorted(tmp_path.iterdir()) == [kept]


def test_demo_resume_needs_the_run_folder(tmp_path):
    result = run_cli("demo", "--resume", "--rpc-url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["stakelearn: error: --resume needs --out: the run folder to continue"]


def test_verify_not_a_round_folder(tmp_path):
    assert_one_line_error(run_cli("verify", tmp_path), "not a round folder")


@pytest.mark.anvil
def test_verify_with_rpc_url_on_anvil(proven_round, capsys):
    from stakelearn.pipeline.chain.anvil import running_anvil

    with running_anvil() as node:
        assert main(["verify", str(proven_round), "--rpc-url", node.url]) == 0
    assert f"on {node.url}" in capsys.readouterr().out


def test_verify_rejects_tampered_proof_with_exit_code(round_copy):
    import json

    proof = json.loads((round_copy / "proof.json").read_text())
    proof["proof"][len(proof["proof"]) // 2] ^= 1  # past the commitments
    (round_copy / "proof.json").write_text(json.dumps(proof))
    assert_one_line_error(run_cli("verify", round_copy), "verify failed")
    # locally first, whatever the kind of round: the EVM's own refusal is tests/prover/test_evm.py's
    assert_one_line_error(run_cli("verify", round_copy, "--evm"), "verify failed")
