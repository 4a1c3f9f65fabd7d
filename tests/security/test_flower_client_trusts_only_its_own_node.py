"""Finding 2 (high): the Flower client took its chain from the server. ``stakelearn_mod`` read
``rpc-url`` and ``run-dir`` from the run config, which the run's submitter (the aggregator) sets
for every client, so an aggregator could point the clients at its own node: the same chain id
and protocol address, a state it made up. On that node the clients passed the global-model check
on any model and signed commitments for a future epoch, which the real contract accepts.

Now a client's trust roots are its own: its chain node, its task folder and its signer come from
the SuperNode's node config (or its environment), never from the run config or a message, and
the signer reads its own node. Here the aggregator's node is a second embedded chain with the
same deployment replayed (same chain id, same addresses, the same clients enrolled) on which
epoch 1 landed; the client's node is the real one, at epoch 1. Both answer JSON-RPC on
127.0.0.1. (The task's circuit is the suite's small one, which no run.json describes: the test
opens a task from the URL the mod picks, as ``open_task`` does, with that circuit.)"""

import json
from dataclasses import replace

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from stakelearn.circuits.krum import krum_round
from stakelearn.errors import InputError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import attach_protocol, deploy_protocol
from stakelearn.pipeline.contracts.signing import UpdateCommitment
from stakelearn.pipeline.federation.task import next_global
from stakelearn.pipeline.flower import client
from stakelearn.pipeline.flower.arrays import from_vector
from stakelearn.pipeline.flower.client import EPOCH, check_global_model, stakelearn_mod
from stakelearn.pipeline.node.signer import RemoteSigner, Signer, SignerRefused, running_signer

from ..flower.helpers import FIXED_POINT, as_arrays, chain_task, context, served, train_message
from ..verifier_contracts.world import ETHER

VICTIM = 0


def forged_node(world):
    """The aggregator's own node: the deployment replayed on a fresh chain (same chain id, same
    addresses), the same clients enrolled in task 1, and epoch 1 landed, which the real chain
    has not seen."""
    chain = Chain.embedded()
    protocol = deploy_protocol(chain, world.round, world.accuracy, world.protocol.config)
    assert (chain.chain_id, protocol.tasks.address) == (world.chain.chain_id, world.protocol.tasks.address)
    forged = replace(world, protocol=protocol, gas={})
    for account in [forged.requester, *forged.clients]:
        chain.fund(account.address, 10 * ETHER)
    for account in forged.clients:
        forged.send(account, protocol.registry, "stake", value=protocol.stake_amount())
    forged.task_id = forged.start_task()
    forged.send(forged.clients[0], protocol.tasks, "submitRound", forged.round_args(forged.task_id, 1))
    return forged


@pytest.fixture
def nodes(world, small_updates):
    """(the client's node URL, the aggregator's node URL, the model the aggregator's node records)."""
    world.task_id = world.start_task()
    forged = forged_node(world)
    params = world.prepared.circuit.params
    model = next_global(krum_round(small_updates, params).total, params.weight, FIXED_POINT)
    with served(world.chain) as own, served(forged.chain) as theirs:
        yield own, theirs, model


@pytest.fixture
def opened(monkeypatch, world):
    """The (task folder, node) pairs the mod opens tasks from; it opens them from the node's URL."""
    pairs = []

    def open_from(task_dir: str, rpc_url: str):
        pairs.append((task_dir, rpc_url))
        return chain_task(rpc_url, world.protocol.tasks.address, world.task_id, world.prepared, FIXED_POINT)

    monkeypatch.setattr(client, "_context_task", open_from)
    return pairs


def signer_on(url: str, world, tmp_path, name: str) -> Signer:
    protocol = attach_protocol(Chain.rpc(url), {"protocol": world.protocol.tasks.address})
    return Signer(protocol, world.clients[VICTIM], tmp_path / f"{name}.sqlite")


def test_the_aggregators_node_would_pass_any_model_and_open_a_future_epoch(world, nodes):
    """The attack as it stood: on the aggregator's node the model checks out and epoch 2 is open."""
    _, theirs, model = nodes
    forged_task = chain_task(theirs, world.protocol.tasks.address, world.task_id, world.prepared, FIXED_POINT)
    layout = tuple((name, tuple(a.shape)) for name, a in as_arrays(np.zeros(16)).items())
    assert check_global_model(forged_task, from_vector(model, layout)) == 2
    assert world.protocol.task(world.task_id).epochs_run == 0  # the real chain is at epoch 1


def test_the_client_reads_its_own_node_not_the_one_the_run_config_names(world, nodes, opened, tmp_path):
    own, theirs, model = nodes
    layout = tuple((name, tuple(a.shape)) for name, a in as_arrays(np.zeros(16)).items())
    with running_signer(signer_on(own, world, tmp_path, "victim")) as signer_url:
        settings = context(
            node_config={"rpc-url": own, "task-dir": str(tmp_path / "own-task"), "signer-url": signer_url},
            # What the aggregator sets for every client: its node, its folder, its "signer".
            run_config={
                "rpc-url": theirs,
                "run-dir": str(tmp_path / "server-task"),
                "task-dir": str(tmp_path / "server-task"),
                "signer-url": "http://127.0.0.1:9",
            },
        )
        message = train_message(
            RecordDict({"arrays": from_vector(model, layout), "config": ConfigRecord({EPOCH: 2, "server-round": 1})})
        )
        trained = []

        def train(msg: Message, _context) -> Message:
            trained.append(msg)
            return Message(RecordDict({"arrays": msg.content["arrays"]}), reply_to=msg)

        with pytest.raises(InputError, match="the server sent a global model that task 1's chain does not record"):
            stakelearn_mod(message, settings, train)
    assert opened == [(str(tmp_path / "own-task"), own)]  # never the run config's node or folder
    assert not trained


def test_the_signer_signs_only_what_its_own_node_allows(world, nodes, tmp_path):
    """Code the server ships could skip the mod and ask the signer directly: the signer reads its
    own node, where epoch 2 is not open. A signer that read the aggregator's node would sign, and
    the real contract would take that signature in epoch 2 (same chain id, same contract)."""
    own, theirs, _ = nodes
    commitment = world.commitments[VICTIM]
    with running_signer(signer_on(own, world, tmp_path, "victim")) as url:
        with pytest.raises(SignerRefused, match="task 1's open epoch is 1 on this signer's node, not 2"):
            RemoteSigner(url).sign(world.task_id, 2, commitment)
        assert RemoteSigner(url).sign(world.task_id, 1, commitment)  # the open epoch, its node's
    fooled = signer_on(theirs, world, tmp_path, "fooled").sign(world.task_id, 2, commitment)
    real = UpdateCommitment(world.chain.chain_id, world.protocol.tasks.address, world.task_id, 2, commitment)
    assert real.signer(fooled) == world.clients[VICTIM].address


@pytest.mark.parametrize("missing", ["rpc-url", "task-dir", "signer-url"])
def test_a_client_without_its_own_settings_refuses_in_one_line(world, opened, missing, tmp_path, monkeypatch):
    """Nothing falls back to the run config: not the node, not the task, and not the key (the
    old fallback read the demo's keys from run.json under the server's run-dir)."""
    for variable in client.NODE_SETTINGS.values():
        monkeypatch.delenv(variable, raising=False)
    run_dir = tmp_path / "server-task"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"keys": {"clients": [world.clients[VICTIM].key.hex()]}}))
    own = {"rpc-url": "http://127.0.0.1:9", "task-dir": str(tmp_path / "own-task"), "signer-url": "http://127.0.0.1:9"}
    del own[missing]
    settings = context(
        node_config={**own, "partition-id": 0}, run_config={**own, missing: "x", "run-dir": str(run_dir)}
    )
    message = train_message(RecordDict({"arrays": as_arrays(np.zeros(16)), "config": ConfigRecord({EPOCH: 1})}))
    with pytest.raises(InputError) as refused:
        stakelearn_mod(message, settings, lambda *_: pytest.fail("trained without its own settings"))
    assert str(refused.value) == (
        f"stakelearn_mod: this SuperNode sets no {missing} (node config {missing}=..., or "
        f"{client.NODE_SETTINGS[missing]}): a client's chain node, task and signer are its own, never the server's"
    )
    assert not opened
