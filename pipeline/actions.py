"""The protocol steps a participant takes on its own, from the command line, with its own key
on any EVM node: a client stakes and enrolls, an aggregator submits a proven round folder, and
anyone verifies a round folder against the verifier a task pins on chain.

Keys come from an environment variable named on the command line, never from an argument.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_utils import to_checksum_address

from stakelearn.errors import InputError, StakeLearnError
from stakelearn.pipeline.chain import Chain, error_name
from stakelearn.prover.evm import verify_arguments
from stakelearn.prover.round import SIGNED, load_round, round_commitments, verify_round
from stakelearn.prover.steps import PROOF, VKA
from stakelearn.verifier_contracts.build import load_artifact

SIGNATURE = 65


def account_from_env(variable: str):
    key = os.environ.get(variable)
    if not key:
        raise InputError(f"no key: put the private key in the environment variable {variable} (never on the command line)")
    try:
        return Account.from_key(key)
    except ValueError as error:
        raise InputError(f"the key in {variable} is not a private key: {error}") from None


def protocol_contract(chain: Chain, address: str):
    address = to_checksum_address(address)
    if not chain.w3.eth.get_code(address):
        raise InputError(f"no contract at {address} on {chain.name}; is this the protocol's chain?")
    return chain.contract(address, load_artifact("StakeLearnProtocol").abi)


def _send(chain: Chain, account, contract, function: str, *args, value: int = 0) -> dict:
    """Send ``function``; on a revert, raise naming the contract's custom error."""
    receipt = chain.send(account, getattr(contract.functions, function)(*args), value=value)
    if receipt["status"] != 1:
        abi = [*load_artifact("StakeLearnProtocol").abi, *load_artifact("StakingRegistry").abi,
               *load_artifact("RoundVerifier").abi]
        result = chain.call(contract.address, contract.encode_abi(function, args=list(args)), sender=account.address,
                            value=value)
        raise StakeLearnError(f"{function} was rejected on {chain.name}: {error_name(abi, result.revert_data) or result.error}")
    return receipt


def stake(chain: Chain, account, protocol_address: str) -> int:
    """Stake STAKE_AMOUNT in the protocol's registry, or top a slashed stake up to it; return what was sent."""
    tasks = protocol_contract(chain, protocol_address)
    registry = chain.contract(tasks.functions.REGISTRY().call(), load_artifact("StakingRegistry").abi)
    required, staked = registry.functions.STAKE_AMOUNT().call(), registry.functions.stakeOf(account.address).call()
    if staked >= required:
        return 0
    _send(chain, account, registry, "topUp" if staked else "stake", value=required - staked)
    return required - staked


def enroll(chain: Chain, account, protocol_address: str, task_id: int) -> dict:
    """Enroll in a task whose verifiers are a pair the protocol approved; return its parameters.
    (A client that holds the task's circuits also checks the verifiers' code:
    ``pipeline.protocol.check_task_verifiers``.)"""
    tasks = protocol_contract(chain, protocol_address)
    params = tasks.functions.taskParams(task_id).call()
    if tasks.functions.approvedAccuracyVerifier(params[7]).call() != params[11]:
        raise StakeLearnError(f"task {task_id}'s verifiers are not a pair the protocol approved: do not enroll")
    _send(chain, account, tasks, "enroll", task_id)
    return {"round_verifier": params[7], "accuracy_verifier": params[11], "clients": params[1]}


def round_arguments(folder: Path, task_id: int, epoch: int, previous_model: bytes) -> tuple:
    """submitRound's Round from a verified round folder with its clients' signed commitments
    (an absent slot gets the all-zero signature)."""
    verify_round(folder)  # the folder is consistent before anything is sent
    manifest, _, _ = load_round(folder)
    if not (folder / SIGNED).exists():
        raise InputError(f"{folder} has no {SIGNED}: prove with the clients' --signed commitments to submit it")
    signed = {record["slot"]: record for record in json.loads((folder / SIGNED).read_text())}
    for record in signed.values():
        if (record["task_id"], record["epoch"]) != (task_id, epoch):
            raise InputError(f"slot {record['slot']} signed for task {record['task_id']} epoch {record['epoch']}, "
                             f"not task {task_id} epoch {epoch}")
    n = manifest["circuit"]["n"]
    signatures = b"".join(bytes.fromhex(signed[i]["signature"]) if i in signed else bytes(SIGNATURE) for i in range(n))
    packed = b"".join(round_commitments(folder))
    proof, instances, words = verify_arguments(folder / PROOF, folder / VKA)
    return (task_id, epoch, previous_model, packed, signatures, proof, instances, words)


def submit_round(chain: Chain, account, protocol_address: str, task_id: int, epoch: int, folder: Path) -> dict:
    tasks = protocol_contract(chain, protocol_address)
    previous = tasks.functions.task(task_id).call()[4]
    return _send(chain, account, tasks, "submitRound", round_arguments(folder, task_id, epoch, previous))


def verify_with_task_verifier(chain: Chain, verifier_address: str, folder: Path) -> int:
    """Check a round folder with the RoundVerifier a task pins (an eth_call: nothing is sent);
    return the selection mask it proves. The circuit is then the task's, not the folder's word."""
    verifier = chain.contract(to_checksum_address(verifier_address), load_artifact("RoundVerifier").abi)
    packed = b"".join(round_commitments(folder))
    proof, instances, words = verify_arguments(folder / PROOF, folder / VKA)
    data = verifier.encode_abi("verifyRound", args=[proof, instances, words, packed])
    result = chain.call(verifier.address, data)
    if not result.ok:
        reason = error_name(load_artifact("RoundVerifier").abi, result.revert_data) or result.error
        raise StakeLearnError(f"the task's RoundVerifier at {verifier.address} rejects the round: {reason}")
    return int.from_bytes(result.data[:32], "big")
