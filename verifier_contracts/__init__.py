"""Solidity sources, generated verifiers, and their build into ABI/bytecode artifacts."""
