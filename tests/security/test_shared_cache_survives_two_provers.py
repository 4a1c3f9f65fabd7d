"""Two provers sharing one key cache (STAKELEARN_HOME) do not crash each other (security review,
finding 11). Two `stakelearn prove` runs of one round shape, started together in a fresh cache,
both build the compiled circuit (and both may generate the SRS and set up the keys); the second
to publish an entry finds the first's in place, checks its digests and uses it, as pip's and
ccache's caches do. Before, it failed with `[Errno 39] Directory not empty` renaming its own build
into the cache."""

import json
import os
import subprocess
import sys

import numpy as np

from stakelearn.circuits.krum import krum_round
from stakelearn.prover.round import verify_round

CIRCUIT = ("--byzantine", "1", "--select", "3", "--inner-cols", "4")


def test_two_provers_of_one_shape_started_together_in_a_fresh_cache_both_finish(tmp_path, small_updates, small_circuit):
    home = tmp_path / "home"  # fresh: nothing compiled, no SRS, no keys
    updates = []
    for slot, row in enumerate(small_updates):
        updates.append(tmp_path / f"client_{slot}.npy")
        np.save(updates[-1], row / 128.0)
    outs = [tmp_path / f"round-{i}" for i in range(2)]
    env = {**os.environ, "STAKELEARN_HOME": str(home)}
    provers = [
        subprocess.Popen(
            [sys.executable, "-m", "stakelearn.pipeline.cli", "prove", *map(str, updates), *CIRCUIT, "--out", str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    results = [(prover, *prover.communicate(timeout=1200)) for prover in provers]
    for prover, _, stderr in results:
        assert prover.returncode == 0, stderr
    # Both rounds verify, proven with one and the same circuit build and keys: the first published.
    digests = {json.loads((out / "round.json").read_text())["vka_digest"] for out in outs}
    assert len(digests) == 1
    reference = krum_round(small_updates, small_circuit.params)
    for out in outs:
        assert verify_round(out).mask == reference.mask.astype(int).tolist()

    from stakelearn.prover.cache import cache_entries
    from stakelearn.prover.publish import check_entry

    entries = cache_entries(home)
    kinds = sorted(entry.kind for entry in entries)
    assert kinds == ["circuit", "keys", "srs"]  # one of each, and no leftover of the losing builds
    for entry in entries:
        if entry.kind != "srs":
            check_entry(entry.path)  # every file is the one its builder published
    assert not [p for p in (home / "srs").iterdir() if p.name.startswith(".")]
