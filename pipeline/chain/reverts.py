"""Name the custom error a revert carries, from the ABIs of every contract StakeLearn deploys."""

from __future__ import annotations

from functools import lru_cache

from eth_utils import keccak

from stakelearn.verifier_contracts.build import CONTRACTS, load_artifact


def error_selectors(abi: list) -> dict[bytes, str]:
    """Each custom error's 4-byte selector and name."""
    selectors = {}
    for item in abi:
        if item.get("type") == "error":
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            selectors[keccak(text=signature)[:4]] = item["name"]
    return selectors


@lru_cache(maxsize=1)
def _known_errors() -> dict[bytes, str]:
    known: dict[bytes, str] = {}
    for name in CONTRACTS:
        known.update(error_selectors(load_artifact(name).abi))
    return known


def error_name(revert_data: bytes) -> str | None:
    """The name of the custom error whose selector starts ``revert_data``, or None."""
    return _known_errors().get(bytes(revert_data[:4]))
