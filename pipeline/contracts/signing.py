"""EIP-712 signing and recovery of update commitments, both sides in one place.

A client signs its commitment for one epoch of one task of one protocol contract on one chain
(MPSRollup.updateDigest), so a signature is worth nothing anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data

from stakelearn.errors import InputError

SIGNATURE_BYTES = 65
ABSENT_SIGNATURE = bytes(SIGNATURE_BYTES)  # an absent slot's: no key signs the absent vector


@dataclass(frozen=True)
class UpdateCommitment:
    """What a client signs: its commitment, bound to (chain, contract, task, epoch)."""

    chain_id: int
    contract: str
    task_id: int
    epoch: int
    commitment: bytes

    def typed_data(self) -> dict:
        return {
            "domain": {
                "name": "StakeLearn",
                "version": "1",
                "chainId": self.chain_id,
                "verifyingContract": self.contract,
            },
            "types": {
                "UpdateCommitment": [
                    {"name": "taskId", "type": "uint256"},
                    {"name": "epoch", "type": "uint256"},
                    {"name": "commitment", "type": "bytes"},
                ]
            },
            "primaryType": "UpdateCommitment",
            "message": {"taskId": self.task_id, "epoch": self.epoch, "commitment": self.commitment},
        }

    def sign(self, account) -> bytes:
        return bytes(account.sign_message(encode_typed_data(full_message=self.typed_data())).signature)

    def signer(self, signature: bytes) -> str:
        """The address whose key made ``signature`` over this commitment."""
        return Account.recover_message(encode_typed_data(full_message=self.typed_data()), signature=signature)


def signed_record(slot: int, signer: str, update: UpdateCommitment, signature: bytes) -> dict:
    """A client's signed commitment as a file holds it: what ``stakelearn commit`` hands the
    aggregator, and what a round folder's ``signed.json`` lists."""
    return {
        "slot": slot,
        "signer": signer,
        "chain_id": update.chain_id,
        "contract": update.contract,
        "task_id": update.task_id,
        "epoch": update.epoch,
        "commitment": update.commitment.hex(),
        "signature": signature.hex(),
    }


def check_signed_records(records: list[dict]) -> None:
    """Every record is for the same (chain, contract, task, epoch) and signed by the key it names.
    Raises InputError on the first that is not."""
    fields = ("chain_id", "contract", "task_id", "epoch")
    for record in records:
        try:
            update = UpdateCommitment(*(record[k] for k in fields), bytes.fromhex(record["commitment"]))
            signer = update.signer(bytes.fromhex(record["signature"]))
        except (KeyError, ValueError, TypeError) as error:
            raise InputError(
                f"slot {record.get('slot')}: not a signed commitment record ({error}); `stakelearn commit` writes one"
            ) from None
        if tuple(record[k] for k in fields) != tuple(records[0][k] for k in fields):
            raise InputError(
                f"slot {record['slot']}'s commitment is signed for another chain, contract, task or epoch "
                f"than slot {records[0]['slot']}'s"
            )
        if signer != record["signer"]:
            raise InputError(f"slot {record['slot']}'s commitment is signed by {signer}, not by {record['signer']}")
