"""A task folder is what a requester (or anyone relaying it) hands the clients and the aggregator;
nobody has to trust it. What it claims is bound to the posted task: its terms and circuits by the
task's modelSpecHash, its initial model by initialModel, its verifiers and set size by the task's
parameters, its model file by its hash. A folder edited in any of these is refused before anyone
trains or proves on it; and it holds no key."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from eth_account import Account

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.apps.demo import run_demo
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.federation.task import TaskConfig
from stakelearn.pipeline.flower import open_task
from stakelearn.pipeline.node.run_folder import load_run, task_dir
from stakelearn.pipeline.node.task_description import FILES, INITIAL_FILE, MODEL_FILE, TASK_FILE

# The demo tests' task shape: its circuits' keys are in the shared cache already.
CONFIG = TaskConfig(clients=5, byzantine=1, attackers=1, epochs=2, evaluation_samples=32)


@pytest.fixture(scope="module")
def posted(tmp_path_factory):
    chain, out = Chain.embedded(), tmp_path_factory.mktemp("run") / "task-run"
    run_demo(CONFIG, out, chain=chain, setup_only=True)
    return chain, out


def edited(tmp_path, out, edit) -> object:
    folder = tmp_path / "task"
    shutil.copytree(task_dir(out), folder)
    edit(folder)
    return folder


def test_the_folder_opens_the_posted_task_and_holds_no_key(posted):
    chain, out = posted
    task = open_task(task_dir(out), "", chain=chain)
    run = load_run(out)
    assert task.task_id == run["task_id"] and task.round.d == CONFIG.dimension
    assert sorted(p.name for p in task_dir(out).iterdir()) == sorted(FILES)
    keys = [run["keys"]["requester"], run["keys"]["aggregator"], *run["keys"]["clients"]]
    for path in task_dir(out).iterdir():
        for key in keys:
            assert key.removeprefix("0x").encode() not in path.read_bytes()
            assert Account.from_key(key).key.hex().encode() not in path.read_bytes()


def _set(field, value):
    def edit(folder):
        data = json.loads((folder / TASK_FILE).read_text())
        data[field] = value
        (folder / TASK_FILE).write_text(json.dumps(data))

    return edit


def _terms(folder):
    data = json.loads((folder / TASK_FILE).read_text())
    data["fixed_point"]["scale_bits"] += 1  # another quantization: the clients would commit other vectors
    (folder / TASK_FILE).write_text(json.dumps(data))


def _verifiers(folder):
    data = json.loads((folder / TASK_FILE).read_text())
    data["verifiers"]["round_verifier"], data["verifiers"]["accuracy_verifier"] = (
        data["verifiers"]["accuracy_verifier"],
        data["verifiers"]["round_verifier"],
    )
    (folder / TASK_FILE).write_text(json.dumps(data))


def _initial(folder):
    initial = np.load(folder / INITIAL_FILE)
    np.save(folder / INITIAL_FILE, initial + 0.5)  # another starting model


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (_terms, "model spec hash"),
        (_verifiers, "round verifier, accuracy verifier"),
        (_initial, "initial model"),
        (_set("task_id", 7), "no task 7"),
    ],
)
def test_a_folder_that_differs_from_the_chain_is_refused(posted, tmp_path, edit, named):
    chain, out = posted
    with pytest.raises(StakeLearnError, match=named):
        open_task(edited(tmp_path, out, edit), "", chain=chain)


def test_another_model_file_or_chain_is_refused(posted, tmp_path):
    chain, out = posted
    swapped = edited(tmp_path, out, lambda folder: (folder / MODEL_FILE).write_bytes(b"another model"))
    with pytest.raises(InputError, match="not the model the task describes"):
        open_task(swapped, "", chain=chain)
    with pytest.raises(InputError, match="chain id 1, the node is chain id"):
        open_task(edited(tmp_path / "other", out, _set("chain_id", 1)), "", chain=chain)
