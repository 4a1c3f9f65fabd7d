"""`stakelearn flower`'s local federation keeps each client's key in that client's signer: the
signers hold the keys, the Flower processes' environment holds none,
and each SuperNode gets its own node config (its node, task folder and signer)."""

from pathlib import Path

from stakelearn.pipeline.flower.local import KEY_ENV, flower_env, start_signers, start_supernode
from stakelearn.pipeline.node.signer import RemoteSigner

from .helpers import served


def environ(service) -> dict:
    """The environment the running ``service``'s process holds (an exited process shows none:
    that would prove nothing, so it fails with the service's log)."""
    entries = Path(f"/proc/{service.process.pid}/environ").read_bytes().split(b"\0")
    found = dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)
    assert found and service.process.poll() is None, f"{service.name} is not running: {service.text()[-2000:]}"
    return found


def test_the_keys_are_in_the_signers_only(world, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "0x" + "11" * 32)  # a key the user left in the shell: not passed on
    task_dir, clients = tmp_path / "task", world.clients[:2]
    keys, protocol = [c.key.hex() for c in clients], world.protocol.tasks.address
    env = flower_env(tmp_path / "flwr-home")
    assert KEY_ENV not in env
    services = []
    try:
        with served(world.chain) as rpc_url:
            signers, urls = start_signers(keys, rpc_url, protocol, env, tmp_path, task_dir / "flower")
            services += signers
            assert [RemoteSigner(url).address for url in urls] == [c.address for c in clients]
            assert [environ(s)[KEY_ENV] for s in signers] == [c.key.hex() for c in clients]
            assert (task_dir / "flower" / "signer-0.sqlite").is_file()  # the task's record, whichever engine
            own = {"rpc-url": rpc_url, "task-dir": str(task_dir), "signer-url": urls[0]}
            node = start_supernode(9, 0, 2, env, tmp_path, own)  # no SuperLink: it only needs to start
            services.append(node)
            assert KEY_ENV not in environ(node)
            config = node.process.args[node.process.args.index("--node-config") + 1]  # what it was started with
            assert (
                config
                == f'partition-id=0 num-partitions=2 rpc-url="{rpc_url}" task-dir="{task_dir}" signer-url="{urls[0]}"'
            )
    finally:
        for service in services:
            service.stop()
