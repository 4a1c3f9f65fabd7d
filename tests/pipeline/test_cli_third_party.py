"""A newcomer's path through the CLI, as subprocesses: each client commits and signs, the
aggregator proves over exactly what was signed, and a third party verifies the round folder on
another machine (an empty STAKELEARN_HOME) with nothing rebuilt, every file checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from stakelearn.files import write_json_atomic

from .test_cli import assert_one_line_error

CONTRACT = "0x" + "ab" * 20
CIRCUIT = ("--byzantine", "1", "--select", "3", "--inner-cols", "4")


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def commit_cli(update, slot, out, key: str, task=7, chain_id=31337, contract=CONTRACT, extra=(), protection=None):
    """`stakelearn commit` for epoch 1 of a five-client task, signing with ``key`` (hex); the
    signer's record goes beside ``out`` unless ``protection`` names it."""
    protection = protection or Path(out).with_suffix(".protection.sqlite")
    options = {"--slot": slot, "--clients": 5, "--task": task, "--epoch": 1, "--chain-id": chain_id,
               "--contract": contract, "--slashing-protection": protection, "--out": out}  # fmt: skip
    flat = [value for option in options.items() for value in option]
    return run_cli("commit", update, *CIRCUIT, *extra, *flat, env={"STAKELEARN_KEY": key})


@pytest.fixture(scope="module")
def signed_round(tmp_path_factory, small_updates):
    """Five clients' updates, their signed commitments (`commit`), and the round proven over them."""
    folder = tmp_path_factory.mktemp("signed")
    keys = [Account.create() for _ in range(5)]
    updates, signed = [], []
    for slot, (row, key) in enumerate(zip(small_updates, keys)):
        updates.append(folder / f"client_{slot}.npy")
        np.save(updates[-1], row / 128.0)
        signed.append(folder / f"signed_{slot}.json")
        result = commit_cli(updates[-1], slot, signed[-1], key.key.hex())
        assert result.returncode == 0, result.stderr
    out = folder / "round"
    result = run_cli("prove", *updates, *CIRCUIT, "--signed", *signed, "--out", out)
    assert result.returncode == 0, result.stderr
    return {"folder": folder, "updates": updates, "signed": signed, "round": out, "keys": keys}


def test_commit_signs_for_the_task_and_epoch(signed_round):
    record = json.loads(signed_round["signed"][2].read_text())
    assert record["signer"] == signed_round["keys"][2].address
    assert (record["slot"], record["task_id"], record["epoch"], record["chain_id"]) == (2, 7, 1, 31337)
    proof_commitments = json.loads((signed_round["round"] / "commitments.json").read_text())["updates"]
    assert record["commitment"] == proof_commitments[2]


def test_commit_needs_a_key_in_the_environment(signed_round, tmp_path):
    result = commit_cli(signed_round["updates"][0], 0, tmp_path / "s.json", "")
    assert_one_line_error(result, "STAKELEARN_KEY")


def test_prove_refuses_an_update_its_client_did_not_sign(signed_round, tmp_path):
    updates = list(signed_round["updates"])
    updates[1], updates[0] = updates[0], updates[1]  # the aggregator swaps two clients' updates
    result = run_cli("prove", *updates, *CIRCUIT, "--signed", *signed_round["signed"], "--out", tmp_path / "r")
    assert_one_line_error(result, "update 0 does not match the commitment its client signed")
    assert not (tmp_path / "r").exists()


def test_prove_refuses_a_forged_signature(signed_round, tmp_path):
    forged = tmp_path / "forged.json"
    record = json.loads(signed_round["signed"][3].read_text())
    record["signer"] = signed_round["keys"][0].address  # claims another client signed it
    write_json_atomic(forged, record)
    signed = [*signed_round["signed"][:3], forged, signed_round["signed"][4]]
    result = run_cli("prove", *signed_round["updates"], *CIRCUIT, "--signed", *signed, "--out", tmp_path / "r")
    assert_one_line_error(result, "slot 3's commitment is signed by")


def test_third_party_verifies_in_an_empty_home_without_rebuilding(signed_round, tmp_path):
    home = tmp_path / "elsewhere"
    result = run_cli("verify", signed_round["round"], env={"STAKELEARN_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "round verified" in result.stdout and "VKA digest 0x" in result.stdout
    assert not (home / "circuits").exists()  # no circuit compiled, no key set up
    result = run_cli("verify", signed_round["round"], "--evm", env={"STAKELEARN_HOME": str(home)})
    assert result.returncode == 0 and "accepted the round" in result.stdout, result.stderr


@pytest.mark.parametrize(
    "name, edit",
    [
        ("public.json", lambda d: {**d, "selected": [0, 1, 2]}),
        ("summary.txt", lambda text: text.replace("left out", "yes", 1)),
        ("input.json", lambda d: {"input_data": [[v + 1 for v in d["input_data"][0]], *d["input_data"][1:]]}),
        ("signed.json", lambda d: [{**d[0], "signature": d[1]["signature"]}, *d[1:]]),
        ("vk.key", None),
        ("round.json", lambda d: {**d, "vka_digest": "0x" + "11" * 32}),  # a forged anchor for the chain
    ],
)
def test_verify_checks_every_file_it_reports_on(signed_round, tmp_path, name, edit):
    folder = tmp_path / "round"
    subprocess.run(["cp", "-r", str(signed_round["round"]), str(folder)], check=True)
    path = folder / name
    if name == "vk.key":
        path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    elif name.endswith(".txt"):
        path.write_text(edit(path.read_text()))
    else:
        write_json_atomic(path, edit(json.loads(path.read_text())))
    result = run_cli("verify", folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_refuses_a_file_it_does_not_check(signed_round, tmp_path):
    folder = tmp_path / "round"
    subprocess.run(["cp", "-r", str(signed_round["round"]), str(folder)], check=True)
    (folder / "notes.txt").write_text("the aggregator says: all good")
    assert_one_line_error(run_cli("verify", folder), "notes.txt")


def test_verify_refuses_a_link_in_place_of_a_file(signed_round, tmp_path):
    folder = tmp_path / "round"
    subprocess.run(["cp", "-r", str(signed_round["round"]), str(folder)], check=True)
    (folder / "public.json").unlink()
    (folder / "public.json").symlink_to("/dev/zero")  # would hang a reader
    assert_one_line_error(run_cli("verify", folder), "not a regular file")
