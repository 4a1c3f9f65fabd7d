"""Shared fixtures: a private cache folder, and one small proven round reused by many tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Keys, SRS files and compiled circuits go to a cache of the test run's own, unless the
    # caller points STAKELEARN_HOME somewhere on purpose (to reuse keys between runs).
    if "STAKELEARN_HOME" not in os.environ:
        home = Path(config.rootpath) / ".pytest_cache" / "stakelearn-home"
        os.environ["STAKELEARN_HOME"] = str(home)
    # Library calls in the tests' own process show their progress on stderr, as the CLI does.
    from stakelearn.progress import show_progress

    show_progress()


SMALL = dict(n=5, f=1, m=3, d=16, max_int=128, num_inner_cols=4)
# The pipeline tests' task (5 clients, m=4, models within +-1024, 32 evaluation samples) pairs
# its circuits at logrows 13; the contract tests deploy the same accuracy verifier.
SMALL_ACCURACY = dict(samples=32, model_bound=4096, min_logrows=13)


@pytest.fixture(scope="session")
def small_circuit():
    from stakelearn.prover.circuit import RoundCircuit

    return RoundCircuit(**SMALL)


@pytest.fixture(scope="session")
def small_accuracy():
    from stakelearn.prover.accuracy import AccuracyCircuit
    from stakelearn.prover.circuit import prepare

    return prepare(AccuracyCircuit(**SMALL_ACCURACY))


@pytest.fixture(scope="session")
def small_updates() -> np.ndarray:
    """Four similar updates and one far away (client 4), integers within +-128."""
    rng = np.random.default_rng(7)
    base = rng.integers(-40, 41, size=SMALL["d"])
    updates = base + rng.integers(-6, 7, size=(SMALL["n"], SMALL["d"]))
    updates[4] = -2 * base
    return np.clip(updates, -128, 128)


@pytest.fixture(scope="session")
def proven_round(tmp_path_factory, small_circuit, small_updates) -> Path:
    """A round proven once per session; tests copy it before changing anything."""
    from stakelearn.prover.round import prove_round

    folder = tmp_path_factory.mktemp("round") / "proven"
    prove_round(small_updates, small_circuit, folder)
    return folder


# A round may leave out min(f, n - m - f, n - 2f - 3) absent clients: none at the small shape
# (5 clients, f = 1), one at this one, whose client 4 is the far one too.
ABSENCE = dict(SMALL, n=6)
ABSENT = np.array([False, False, False, False, True, False])  # client 4 never commits


@pytest.fixture(scope="session")
def absence_circuit():
    from stakelearn.prover.circuit import RoundCircuit

    return RoundCircuit(**ABSENCE)


@pytest.fixture(scope="session")
def absence_updates(small_updates) -> np.ndarray:
    """The session's five updates and a sixth like the first four."""
    return np.vstack([small_updates, np.clip(small_updates[0] + 3, -128, 128)])


@pytest.fixture(scope="session")
def absence_proven_round(tmp_path_factory, absence_circuit, absence_updates) -> Path:
    from stakelearn.prover.round import prove_round

    folder = tmp_path_factory.mktemp("absence") / "proven"
    prove_round(absence_updates, absence_circuit, folder)
    return folder


@pytest.fixture(scope="session")
def absent_round(tmp_path_factory, absence_circuit, absence_updates):
    """The six-client updates proven with client 4 absent."""
    from stakelearn.prover.round import prove_round

    folder = tmp_path_factory.mktemp("absent") / "round"
    updates = absence_updates.copy()
    updates[ABSENT] = 0
    prove_round(updates, absence_circuit, folder, absent=ABSENT)
    return folder


@pytest.fixture(scope="session")
def duplicated_round(tmp_path_factory, small_circuit, small_updates):
    """A round in which client 3 sent client 0's numbers (under its own slot tag)."""
    from stakelearn.prover.round import prove_round

    updates = small_updates.copy()
    updates[3] = updates[0]
    folder = tmp_path_factory.mktemp("duplicated") / "round"
    prove_round(updates, small_circuit, folder)
    return folder


@pytest.fixture
def world(small_circuit, proven_round, small_accuracy):
    """A fresh embedded chain with the protocol deployed and five staked clients."""
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.prover.circuit import prepare

    from .verifier_contracts.world import make_world

    return make_world(Chain.embedded(), prepare(small_circuit), proven_round, small_accuracy)


@pytest.fixture
def absence_world(absence_circuit, absence_proven_round, small_accuracy):
    """The same protocol over the six-client circuit, whose rounds may leave one client absent."""
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.prover.circuit import prepare

    from .verifier_contracts.world import make_world

    return make_world(Chain.embedded(), prepare(absence_circuit), absence_proven_round, small_accuracy)


@pytest.fixture
def round_copy(proven_round, tmp_path) -> Path:
    target = tmp_path / "round"
    shutil.copytree(proven_round, target)
    return target
