"""Gas per protocol function against the committed snapshot (gas-snapshot.json): a change over
1 % either way fails until the snapshot is updated on purpose, with

    STAKELEARN_UPDATE_GAS_SNAPSHOT=1 scripts/test.sh tests/verifier_contracts/test_gas_snapshot.py

and the new figures are reviewed in the diff. One task of the session round (n = 5) runs
through every state: stake, create, enroll (the last one starts the task), post a commitment,
two rounds (each flags client 4), an equivocation report (the only slash), end training, reveal, settle, withdraw credit and stake.
The snapshot's "chunked: " entries are a chunked round's staging and submission, measured where its
proofs are (tests/security/test_chunked_round_binds_every_chunk.py) through :func:`check_gas`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stakelearn.files import write_json_atomic

from .world import EVALUATION_SALT, REVEALED

SNAPSHOT = Path(__file__).with_name("gas-snapshot.json")
TOLERANCE = 0.01
CHUNKED = "chunked: "


def check_gas(measured: dict[str, int]) -> None:
    """``measured`` against the snapshot's entries of its kind (all "chunked: " ones, or all the
    others); STAKELEARN_UPDATE_GAS_SNAPSHOT=1 replaces those entries with it first."""
    chunked = all(name.startswith(CHUNKED) for name in measured)
    snapshot = json.loads(SNAPSHOT.read_text())
    if os.environ.get("STAKELEARN_UPDATE_GAS_SNAPSHOT"):
        others = {name: gas for name, gas in snapshot.items() if name.startswith(CHUNKED) != chunked}
        write_json_atomic(SNAPSHOT, {**others, **measured} if chunked else {**measured, **others})
        snapshot = json.loads(SNAPSHOT.read_text())
    ours = {name for name in snapshot if name.startswith(CHUNKED) == chunked}
    assert set(measured) == ours, "functions measured differ from the snapshot's: update it on purpose"
    changed = {
        name: f"{snapshot[name]:,} -> {gas:,} ({gas / snapshot[name] - 1:+.1%})"
        for name, gas in measured.items()
        if abs(gas / snapshot[name] - 1) > TOLERANCE
    }
    assert not changed, f"gas moved more than {TOLERANCE:.0%}: {changed}; if intended, update the snapshot"


def one_task_of_every_function(world) -> dict[str, int]:
    tasks, registry, clients = world.protocol.tasks, world.protocol.registry, world.clients
    gas = {"stake": world.gas["stake"]}

    def send(label, account, contract, function, *args, value=0):
        gas[label] = world.send(account, contract, function, *args, value=value)["gasUsed"]

    params = world.params()
    send(
        "createTask",
        world.requester,
        tasks,
        "createTask",
        params.as_abi(),
        value=world.protocol.config.base_fee_wei + params.escrow,
    )
    task_id = world.protocol.task_count()
    for i, client in enumerate(clients):
        send("enroll (starts the task)" if i == len(clients) - 1 else "enroll", client, tasks, "enroll", task_id)
    send("postCommitment", clients[0], tasks, "postCommitment", task_id, 1, world.commitments[0])
    send("submitRound (first epoch)", clients[0], tasks, "submitRound", world.round_args(task_id, 1))
    send("submitRound (flags)", clients[0], tasks, "submitRound", world.round_args(task_id, 2))
    send(
        "reportEquivocation", world.requester, tasks, "reportEquivocation", *world.equivocation(clients[3], task_id, 2)
    )
    send("endTraining", world.requester, tasks, "endTraining", task_id)
    send(
        "revealEvaluationSet",
        world.requester,
        tasks,
        "revealEvaluationSet",
        task_id,
        EVALUATION_SALT,
        REVEALED,
    )
    world.let_deadline_pass(task_id)
    send("settle (no accuracy proof)", clients[1], tasks, "settle", task_id)
    send("withdrawCredit", clients[0], tasks, "withdrawCredit")
    send("requestWithdrawal", clients[0], registry, "requestWithdrawal")
    world.travel_to(world.chain.w3.eth.get_block("latest")["timestamp"] + 3601)  # past unbonding
    send("withdraw", clients[0], registry, "withdraw")
    return gas


def test_gas_per_function_matches_the_snapshot(world):
    check_gas(one_task_of_every_function(world))
