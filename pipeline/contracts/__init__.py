"""Typed bindings to the protocol contracts: deploy and attach, task parameters and status as
dataclasses and enums, EIP-712 signing of update commitments, the verifiers."""
