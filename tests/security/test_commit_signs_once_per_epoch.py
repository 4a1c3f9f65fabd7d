"""Equivocation, two different commitments signed for one task and epoch, is the one thing the
protocol slashes. `stakelearn commit` keeps a client from doing it by mistake (a retrained
update, a rerun): like the signer, it records every commitment its key signed and refuses a
second one for the same (chain, contract, task, epoch)."""

import json

import numpy as np
from eth_account import Account

from ..pipeline.test_cli import assert_one_line_error
from ..pipeline.test_cli_third_party import commit_cli


def test_commit_refuses_a_second_commitment_for_one_epoch(small_updates, tmp_path):
    key, protection = Account.create().key.hex(), tmp_path / "client.sqlite"
    update = tmp_path / "update.npy"
    np.save(update, small_updates[1] / 128.0)
    first = commit_cli(update, 1, tmp_path / "a.json", key, protection=protection)
    assert first.returncode == 0, first.stderr
    again = commit_cli(update, 1, tmp_path / "b.json", key, protection=protection)
    assert again.returncode == 0, again.stderr  # the same commitment: the same signature
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())

    retrained = tmp_path / "retrained.npy"
    np.save(retrained, small_updates[1] / 256.0)
    second = commit_cli(retrained, 1, tmp_path / "c.json", key, protection=protection)
    assert_one_line_error(second, "equivocation")
    assert not (tmp_path / "c.json").exists()
    other_task = commit_cli(retrained, 1, tmp_path / "d.json", key, task=8, protection=protection)
    assert other_task.returncode == 0, other_task.stderr
