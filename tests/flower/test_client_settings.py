"""A Flower client's own settings (its chain node, task folder and signer): the SuperNode's node
config first, then its environment (the simulation engine's virtual nodes share one, so it may
list one signer per partition-id); never the run config."""

import pytest

from stakelearn.errors import InputError
from stakelearn.pipeline.flower.client import NODE_SETTINGS, ClientSettings

from .helpers import context

OWN = {"rpc-url": "http://127.0.0.1:8545", "task-dir": "/srv/task", "signer-url": "http://127.0.0.1:7001"}
SERVERS = {"rpc-url": "http://evil:8545", "task-dir": "/evil", "signer-url": "http://evil:1", "run-dir": "/evil"}


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch):
    for variable in NODE_SETTINGS.values():
        monkeypatch.delenv(variable, raising=False)


def test_the_node_config_is_read_and_the_run_config_never():
    settings = ClientSettings.of(context({**OWN, "partition-id": 3}, SERVERS))
    assert (settings.rpc_url, str(settings.task_dir), settings.signer_url) == tuple(OWN.values())


def test_the_environment_stands_in_for_a_missing_node_config_key(monkeypatch):
    monkeypatch.setenv("STAKELEARN_RPC_URL", "http://127.0.0.1:9545")
    monkeypatch.setenv("STAKELEARN_TASK_DIR", "/srv/other")
    settings = ClientSettings.of(context({"signer-url": OWN["signer-url"]}, SERVERS))
    assert (settings.rpc_url, str(settings.task_dir)) == ("http://127.0.0.1:9545", "/srv/other")
    assert ClientSettings.of(context(OWN, SERVERS)).rpc_url == OWN["rpc-url"]  # the node config first


def test_the_simulation_engine_lists_one_signer_per_partition(monkeypatch):
    monkeypatch.setenv("STAKELEARN_SIGNER_URL", "http://127.0.0.1:7000 http://127.0.0.1:7001 http://127.0.0.1:7002")
    node = {"rpc-url": OWN["rpc-url"], "task-dir": OWN["task-dir"]}
    assert ClientSettings.of(context({**node, "partition-id": 2}, SERVERS)).signer_url == "http://127.0.0.1:7002"
    with pytest.raises(InputError, match="lists 3 signers, one per partition-id; this node has 3"):
        ClientSettings.of(context({**node, "partition-id": 3}, SERVERS))
