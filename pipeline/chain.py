"""The chain gateway: the only module that talks to an EVM (web3).

Two transports, one code path: the embedded chain (web3's EthereumTesterProvider over py-evm,
in process, nothing to start) and any JSON-RPC node (anvil started by ``stakelearn chain``, a
testnet, an L2) via ``--rpc-url``. Deployments enforce EIP-170's 24,576-byte code size limit
because real chains do.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.providers.eth_tester import EthereumTesterProvider

from stakelearn.errors import InputError, ToolchainError
from stakelearn.verifier_contracts.solc import EIP170_CODE_SIZE_LIMIT, CompiledContract


@dataclass(frozen=True)
class CallResult:
    ok: bool
    data: bytes
    error: str = ""
    revert_data: bytes = b""


def error_name(abi: list, revert_data: bytes) -> str | None:
    """The name of the custom error in ``abi`` whose selector starts ``revert_data``."""
    for item in abi:
        if item.get("type") == "error":
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            if revert_data[:4] == keccak(text=signature)[:4]:
                return item["name"]
    return None


# Explicit gas for our own transactions: web3 would otherwise execute each one twice (once to
# estimate), and executing a proof verification on py-evm takes seconds.
TX_GAS = 15_000_000


class Chain:
    """A connected EVM with a funded sender account."""

    def __init__(self, w3: Web3, name: str) -> None:
        self.w3 = w3
        self.name = name
        # The node's first unlocked account (anvil, the embedded chain) pays for deployments and
        # funding; a public node has none, and participants sign with their own keys (`send`).
        accounts = w3.eth.accounts
        self.sender = accounts[0] if accounts else None

    @classmethod
    def embedded(cls) -> "Chain":
        return cls(Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend()))), "embedded py-evm")

    @classmethod
    def rpc(cls, url: str) -> "Chain":
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
        try:
            w3.eth.chain_id
        except (OSError, Web3Exception) as error:
            raise InputError(f"no EVM node answers at {url}: {error}") from error
        return cls(w3, url)

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def deploy(self, contract: CompiledContract, *args) -> tuple[str, int]:
        """Deploy ``contract``; return its address and the gas used."""
        if contract.runtime_size > EIP170_CODE_SIZE_LIMIT:
            raise ToolchainError(
                f"{contract.name} is {contract.runtime_size} bytes, over the EIP-170 limit of "
                f"{EIP170_CODE_SIZE_LIMIT}"
            )
        factory = self.w3.eth.contract(abi=contract.abi, bytecode=contract.bytecode)
        receipt = self._wait(factory.constructor(*args).transact({"from": self.sender, "gas": TX_GAS}))
        return receipt["contractAddress"], receipt["gasUsed"]

    def contract(self, address: str, abi: list):
        return self.w3.eth.contract(address=address, abi=abi)

    def transact_checked(self, to: str, data: bytes) -> int:
        """Send a transaction that must succeed; return the gas used."""
        receipt = self.transact(to, data)
        if receipt["status"] != 1:
            raise ToolchainError(f"transaction to {to} reverted")
        return receipt["gasUsed"]

    def transact(self, to: str, data: bytes) -> dict:
        """Send a transaction with raw calldata; return its receipt (status 0 if it reverted)."""
        return self._wait(self.w3.eth.send_transaction({"from": self.sender, "to": to, "data": data, "gas": TX_GAS}))

    def call(self, to: str, data: bytes, sender: str | None = None, value: int = 0) -> CallResult:
        """An eth_call with raw calldata; a revert is a result, not an exception."""
        try:
            request = {"to": to, "data": data, "value": value}
            if sender or self.sender:
                request["from"] = sender or self.sender
            return CallResult(ok=True, data=bytes(self.w3.eth.call(request)))
        except ContractLogicError as error:
            data = error.data if isinstance(error.data, str) and error.data.startswith("0x") else "0x"
            return CallResult(ok=False, data=b"", error=str(error.message or error), revert_data=bytes.fromhex(data[2:]))
        except TransactionFailed as error:
            # The embedded chain reports a custom error as the repr of its raw revert bytes.
            reason = str(error).removeprefix("execution reverted: ")
            raw = ast.literal_eval(reason) if reason.startswith(("b'", 'b"')) else b""
            return CallResult(ok=False, data=b"", error=str(error), revert_data=raw)

    def fund(self, address: str, wei: int) -> None:
        self._wait(self.w3.eth.send_transaction({"from": self.sender, "to": address, "value": wei, "gas": 21_000}))

    def send(self, account, call, value: int = 0) -> dict:
        """Sign ``call`` (a bound contract function) with a local ``account`` and send it;
        return the receipt, whose status is 0 if it reverted."""
        tx = call.build_transaction({
            "from": account.address, "value": value, "gas": TX_GAS, "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(account.address),
        })
        signed = account.sign_transaction(tx)
        return self._wait(self.w3.eth.send_raw_transaction(signed.raw_transaction))

    def _wait(self, tx_hash):
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
