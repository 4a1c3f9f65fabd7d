"""The chain room: the only code that talks to an EVM (web3): the gateway, revert decoding,
signing accounts, and the local anvil node."""
