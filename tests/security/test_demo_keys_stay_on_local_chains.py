"""The demo funds its throwaway keys (written to run.json in plain text) only on a local
development chain, unless told the chain's id, and a run on a node sweeps what is left in them
back to the funding account (security review, finding 9). Before, `demo --rpc-url` funded every
actor's key from run.json on any chain and never swept the leftovers.

On anvil nodes started with a chain id of a real network (10, Optimism's): the demo is refused in
one line before anything is deployed or funded; the sweep empties funded demo keys into the
funder's account."""

import subprocess
import sys

import pytest
from eth_account import Account

from stakelearn.pipeline.apps.demo import check_demo_keys_allowed, sweep_demo_keys
from stakelearn.pipeline.chain.anvil import running_anvil
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.types import ETHER

A_REAL_NETWORK = 10


def stakelearn(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stakelearn.pipeline.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.anvil
def test_demo_refuses_to_fund_its_keys_on_a_chain_that_is_not_local(tmp_path):
    with running_anvil(chain_id=A_REAL_NETWORK) as node:
        chain = Chain.rpc(node.url)
        funder = chain.payer_address
        out = tmp_path / "run"
        result = stakelearn(
            "demo", "--clients", "5", "--byzantine", "1", "--attackers", "1", "--rpc-url", node.url, "--out", out
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert f"chain id {A_REAL_NETWORK}, not a local development chain" in line
        assert f"--allow-demo-keys-on {A_REAL_NETWORK}" in line
        assert chain.w3.eth.get_transaction_count(funder) == 0  # nothing deployed, nothing funded
        assert not out.exists()
        check_demo_keys_allowed(chain, allow_on=A_REAL_NETWORK)  # the flag names this chain: allowed
    with running_anvil() as local:  # anvil's own chain id, 31337: a local development chain
        check_demo_keys_allowed(Chain.rpc(local.url))


@pytest.mark.anvil
def test_the_demo_keys_are_swept_back_to_the_funder(tmp_path):
    with running_anvil(chain_id=A_REAL_NETWORK) as node:
        chain = Chain.rpc(node.url)
        funder = Account.create().address  # where the leftovers go: an empty account, to count them
        keys = {"requester": Account.create(), "aggregator": Account.create()}
        keys["clients"] = [Account.create() for _ in range(3)]
        accounts = [keys["requester"], keys["aggregator"], *keys["clients"]]
        for i, account in enumerate(accounts):
            chain.fund(account.address, (i + 1) * ETHER // 10)
        run = {
            "keys": {
                "requester": keys["requester"].key.hex(),
                "aggregator": keys["aggregator"].key.hex(),
                "clients": [c.key.hex() for c in keys["clients"]],
            }
        }
        swept = sweep_demo_keys(chain, run, funder)
        assert swept == chain.w3.eth.get_balance(funder) > 0
        funded = sum((i + 1) * ETHER // 10 for i in range(len(accounts)))
        fees = funded - swept
        assert 0 < fees <= len(accounts) * 21_000 * chain.w3.eth.gas_price * 2  # one transfer's fee each
        assert [chain.w3.eth.get_balance(a.address) for a in accounts] == [0] * len(accounts)
        assert sweep_demo_keys(chain, run, funder) == 0  # nothing left to sweep
