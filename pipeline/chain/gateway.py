"""The chain gateway: the one place that sends transactions, makes calls and reads logs.

Two transports, one code path: the embedded chain (web3's EthereumTesterProvider over py-evm,
in process, nothing to start) and any JSON-RPC node (anvil started by ``stakelearn chain``, a
testnet, an L2) via ``--rpc-url``. Every transaction is signed here with a local key
(``eth_account``), except the payer's on a node that holds unlocked accounts (anvil, the
embedded chain), so the same code runs on a public network. Deployments enforce EIP-170's
24,576-byte code size limit because real chains do.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass
from functools import cached_property

from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3Exception
from web3.providers.eth_tester import EthereumTesterProvider

from stakelearn.errors import InputError, StakeLearnError, ToolchainError
from stakelearn.pipeline.chain.reverts import error_name
from stakelearn.verifier_contracts.solc import EIP170_CODE_SIZE_LIMIT, CompiledContract

# The gas ceiling of our transactions. The embedded chain always gives it (estimating would run
# each proof verification twice on py-evm, seconds each); a node gets its own estimate.
TX_GAS = 15_000_000
GAS_MARGIN = 1.2  # over a node's estimate: state may move between the estimate and the block
# Public RPC endpoints refuse log queries over wide block ranges: read logs in slices this wide.
LOG_BLOCK_RANGE = 5_000


class TransactionRejected(StakeLearnError):
    """A transaction reverted; the message names the contract's custom error."""


@dataclass(frozen=True)
class CallResult:
    ok: bool
    data: bytes
    error: str = ""
    revert_data: bytes = b""

    @property
    def reason(self) -> str:
        return error_name(self.revert_data) or self.error or "reverted"


TRANSFER_GAS = 21_000  # a plain ether transfer


class Chain:
    """A connected EVM, and the account that pays for deployments and funding (the payer)."""

    def __init__(self, w3: Web3, name: str, payer: LocalAccount | None = None, estimate_gas: bool = True) -> None:
        self.w3 = w3
        self.name = name
        self.estimate_gas = estimate_gas
        # A local key signs anywhere; without one, the node's first unlocked account pays
        # (anvil, the embedded chain). A public node has none: then give a key.
        accounts = [] if payer is not None else w3.eth.accounts
        self.payer: LocalAccount | str | None = payer or (accounts[0] if accounts else None)

    @classmethod
    def embedded(cls) -> Chain:
        return cls(Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend()))), "embedded py-evm", estimate_gas=False)

    @classmethod
    def rpc(cls, url: str, payer: LocalAccount | None = None) -> Chain:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
        try:
            w3.eth.get_block_number()  # does anything answer?
        except (OSError, Web3Exception) as error:
            raise InputError(f"no EVM node answers at {url}: {error}") from error
        return cls(w3, url, payer)

    @cached_property
    def chain_id(self) -> int:  # asked once: every signature and transaction names it
        return self.w3.eth.chain_id

    @property
    def payer_address(self) -> str | None:
        return self.payer if isinstance(self.payer, str) else getattr(self.payer, "address", None)

    def require_payer(self) -> LocalAccount | str:
        """The payer; without one, an InputError saying how to give one."""
        if self.payer is None:
            raise InputError(
                f"{self.name} holds no unlocked account to pay from: give a funded key "
                "(--private-key-env or --keystore)"
            )
        return self.payer

    # --- transactions ---------------------------------------------------------------------
    def send(self, account, call, value: int = 0) -> dict:
        """Send ``call`` (a bound contract function or constructor) from ``account`` (a local
        key, or the address of an unlocked node account); return the receipt, whose status is
        0 if it reverted."""
        tx = {"from": account if isinstance(account, str) else account.address, "value": value}
        tx["gas"] = self._gas_limit(lambda: call.estimate_gas(tx))
        if isinstance(account, str):
            return self._wait(call.transact(tx))
        tx = call.build_transaction(
            {**tx, "chainId": self.chain_id, "nonce": self.w3.eth.get_transaction_count(account.address, "pending")}
        )
        return self._wait(self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))

    def execute(self, account, contract, function: str, *args, value: int = 0) -> dict:
        """Send ``contract.function(*args)``; on a revert, raise naming the custom error."""
        receipt = self.send(account, getattr(contract.functions, function)(*args), value=value)
        if receipt["status"] != 1:
            reason = self.revert_name(account, contract, function, *args, value=value) or "reverted"
            raise TransactionRejected(f"{function} was rejected on {self.name}: {reason}")
        return receipt

    def revert_name(self, account, contract, function: str, *args, value: int = 0) -> str | None:
        """The custom error ``contract.function(*args)`` reverts with when ``account`` sends it
        (replayed as a call), or None if it would succeed."""
        sender = account if isinstance(account, str) else account.address
        result = self.call(contract.address, contract.encode_abi(function, args=list(args)), sender=sender, value=value)
        return None if result.ok else result.reason

    def deploy(self, contract: CompiledContract, *args) -> tuple[str, int]:
        """Deploy ``contract`` from the payer; return its address and the gas used."""
        if contract.runtime_size > EIP170_CODE_SIZE_LIMIT:
            raise ToolchainError(
                f"{contract.name} is {contract.runtime_size} bytes, over the EIP-170 limit of {EIP170_CODE_SIZE_LIMIT}"
            )
        factory = self.w3.eth.contract(abi=contract.abi, bytecode=contract.bytecode)
        receipt = self.send(self.require_payer(), factory.constructor(*args))
        if receipt["status"] != 1:
            raise TransactionRejected(f"deploying {contract.name} on {self.name} reverted")
        return receipt["contractAddress"], receipt["gasUsed"]

    def transact(self, to: str, data: bytes) -> dict:
        """Send raw calldata from the payer; return the receipt (status 0 if it reverted)."""
        return self._send_plain({"to": to, "data": data})

    def fund(self, address: str, wei: int) -> None:
        receipt = self._send_plain({"to": address, "value": wei})
        if receipt["status"] != 1:
            raise TransactionRejected(f"funding {address} on {self.name} failed")

    def sweep(self, account: LocalAccount, to: str) -> int:
        """Send all of ``account``'s balance but a plain transfer's fee to ``to``, at the node's gas
        price, so the account ends empty; return the wei sent (0 when the balance does not cover
        the fee). Raises TransactionRejected when the node refuses it."""
        gas_price = self.w3.eth.gas_price
        value = self.w3.eth.get_balance(account.address) - TRANSFER_GAS * gas_price
        if value <= 0:
            return 0
        tx = {
            "to": to,
            "value": value,
            "gas": TRANSFER_GAS,
            "gasPrice": gas_price,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
        }
        try:
            receipt = self._wait(self.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
        except (ValueError, OSError) as error:  # web3's RPC errors are ValueErrors
            raise TransactionRejected(f"sweeping {account.address} on {self.name}: {error}") from None
        if receipt["status"] != 1:
            raise TransactionRejected(f"sweeping {account.address} on {self.name} failed")
        return value

    def _send_plain(self, tx: dict) -> dict:
        """A transaction without a contract binding (a transfer, raw calldata) from the payer."""
        payer = self.require_payer()
        tx = {**tx, "gas": self._gas_limit(lambda: self.w3.eth.estimate_gas({**tx, "from": self.payer_address}))}
        if isinstance(payer, str):
            return self._wait(self.w3.eth.send_transaction({**tx, "from": payer}))
        tx = {
            **tx,
            "from": payer.address,
            "chainId": self.chain_id,
            "gasPrice": self.w3.eth.gas_price,
            "nonce": self.w3.eth.get_transaction_count(payer.address, "pending"),
        }
        return self._wait(self.w3.eth.send_raw_transaction(payer.sign_transaction(tx).raw_transaction))

    def _gas_limit(self, estimate) -> int:
        """TX_GAS on the embedded chain; on a node its ``estimate()`` with a margin, so a sender
        need not hold the fee of the ceiling. A transaction the node says would revert gets the
        ceiling and reverts on chain, its receipt saying so, as on the embedded chain."""
        if not self.estimate_gas:
            return TX_GAS
        try:
            return min(TX_GAS, int(estimate() * GAS_MARGIN))
        except (ContractLogicError, Web3Exception, ValueError):
            return TX_GAS

    def _wait(self, tx_hash) -> dict:
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)

    @property
    def embedded_clock(self) -> bool:
        """Whether this is the embedded chain, whose clock moves only when told to."""
        return isinstance(self.w3.provider, EthereumTesterProvider)

    def now(self) -> int:
        """The time the next block will carry, as near as can be told: the embedded chain's latest
        block; on a node the later of its latest block and the wall clock (a node that mines only on
        transactions, as anvil does, mines the next one at the wall clock's time)."""
        latest = self.latest_timestamp()
        return latest if self.embedded_clock else max(latest, int(time.time()))

    def wait_past(self, timestamp: int, poll_seconds: float) -> None:
        """Let the chain's clock pass ``timestamp``: the embedded chain travels there at once; on a
        node, wait ``poll_seconds`` (at most until then) and let the caller look again."""
        if self.embedded_clock:
            if self.latest_timestamp() <= timestamp:
                self.w3.testing.timeTravel(timestamp + 1)
                self.w3.testing.mine()
            return
        time.sleep(max(0.0, min(poll_seconds, timestamp + 1 - time.time())))

    def travel(self, seconds: int) -> None:
        """Move the embedded chain's clock ``seconds`` past its latest block (deadlines in gas runs)."""
        self.w3.testing.timeTravel(self.latest_timestamp() + seconds)

    # --- reads ----------------------------------------------------------------------------
    def latest_timestamp(self) -> int:
        """The chain's clock: its latest block's timestamp (what deadlines are measured against)."""
        return self.w3.eth.get_block("latest")["timestamp"]

    def call(self, to: str, data: bytes, sender: str | None = None, value: int = 0) -> CallResult:
        """An eth_call with raw calldata; a revert is a result, not an exception."""
        try:
            request = {"to": to, "data": data, "value": value}
            sender = sender or self.payer_address
            if sender:
                request["from"] = sender
            return CallResult(ok=True, data=bytes(self.w3.eth.call(request)))
        except ContractLogicError as error:
            data = error.data if isinstance(error.data, str) and error.data.startswith("0x") else "0x"
            return CallResult(
                ok=False, data=b"", error=str(error.message or error), revert_data=bytes.fromhex(data[2:])
            )
        except TransactionFailed as error:
            # The embedded chain reports a custom error as the repr of its raw revert bytes.
            reason = str(error).removeprefix("execution reverted: ")
            raw = ast.literal_eval(reason) if reason.startswith(("b'", 'b"')) else b""
            return CallResult(ok=False, data=b"", error=str(error), revert_data=raw)

    def logs(self, event, from_block: int, **argument_filters) -> list:
        """Every log of ``event`` (e.g. ``contract.events.RoundSubmitted``) matching the
        filters, from ``from_block`` to the latest block, read in slices of LOG_BLOCK_RANGE."""
        latest = self.w3.eth.block_number
        found = []
        for start in range(from_block, latest + 1, LOG_BLOCK_RANGE):
            end = min(start + LOG_BLOCK_RANGE - 1, latest)
            found += event().get_logs(from_block=start, to_block=end, argument_filters=argument_filters or None)
        return found

    def receipt(self, tx_hash) -> dict:
        return self.w3.eth.get_transaction_receipt(tx_hash)

    def transaction(self, tx_hash) -> dict:
        return self.w3.eth.get_transaction(tx_hash)

    def code(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(address))

    def contract(self, address: str, abi: list):
        return self.w3.eth.contract(address=address, abi=abi)

    def has_code(self, address: str) -> bool:
        return bool(self.code(address))
