"""The aggregator's side of an optimistic round (OptimisticRounds): claim a proven round folder
with a bond, answer every dispute from it, and finalize it once its window is over.

The folder is the bundle: its ``file://`` address goes on chain with the claim, so a watcher on
the same machine, or anyone it is copied to, can check it. A crash between the claim and its
finalization resumes on the pending claim (the same claim is never posted twice).
"""

from __future__ import annotations

import logging

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.contracts.optimistic import (
    Bundle,
    Claim,
    Outcome,
    State,
    answer,
    dispute_of,
    finalize,
    propose,
)
from stakelearn.pipeline.contracts.protocol import Protocol

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


def claim_round(
    protocol: Protocol,
    account,
    task_id: int,
    epoch: int,
    bundle: Bundle,
    signatures: list[bytes],
    poll_seconds: float = POLL_SECONDS,
) -> tuple[dict, int]:
    """Claim ``bundle``'s round for (task, epoch) from the chain's current global model, answer
    each dispute as it comes, finalize after the window. Returns the receipt that recorded the
    round and the gas of the other transactions (the claim, the answers). Raises StakeLearnError
    if a dispute voided the round (the folder cannot back the claim: a bug or a tampered folder)."""
    claim = bundle.claim(task_id, epoch, protocol.task(task_id).global_model, signatures)
    nonce, outcome, from_block, gas = _claim_once(protocol, account, claim, bundle)
    rounds = protocol.rounds
    answered: set[str] = set()
    while True:
        for event in protocol.chain.logs(rounds.events.RoundChallenged, from_block, taskId=task_id, nonce=nonce):
            challenger = event["args"]["challenger"]
            view = dispute_of(protocol, task_id, nonce, challenger)
            if view.kind and view.proposer_to_move:
                receipt = answer(protocol, account, claim, outcome, challenger, bundle)
                gas += receipt["gasUsed"]
                if challenger not in answered:
                    log.info(f"epoch {epoch}: challenged by {challenger} ({view.kind.name.lower()}): answering")
                    answered.add(challenger)
        state, _, _, deadline, open_disputes, _ = rounds.functions.pending(task_id).call()
        if state == State.VOID:
            raise StakeLearnError(f"epoch {epoch}: a challenge voided the claim of task {task_id} (nonce {nonce})")
        if protocol.chain.now() > deadline and open_disputes == 0:
            receipt = finalize(protocol, account, claim, outcome)
            log.info(f"epoch {epoch}: final after its challenge window ({receipt['gasUsed']:,} gas to record)")
            return receipt, gas
        protocol.chain.wait_past(deadline, poll_seconds)


def _claim_once(protocol: Protocol, account, claim: Claim, bundle: Bundle) -> tuple[int, Outcome, int, int]:
    """Post ``claim`` unless it is already the task's pending claim (a resumed run); its nonce,
    outcome, the block to read its disputes from, and the gas spent here."""
    rounds = protocol.rounds
    state, _, nonce, deadline, _, _ = rounds.functions.pending(claim.task_id).call()
    if state == State.PENDING:
        for event in protocol.chain.logs(
            rounds.events.RoundProposed, protocol.deployment_block, taskId=claim.task_id, epoch=claim.epoch
        ):
            if event["args"]["nonce"] == nonce and Claim.from_abi(event["args"]["claim"]) == claim:
                return nonce, Outcome.from_abi(event["args"]["outcome"]), event["blockNumber"], 0
        raise StakeLearnError(
            f"task {claim.task_id} has another pending claim for epoch {claim.epoch} (nonce {nonce}); "
            f"wait for its window (until {deadline}) or challenge it if it is false"
        )
    nonce, outcome, receipt = propose(protocol, account, claim, bundle.folder.resolve().as_uri())
    window = rounds.functions.pending(claim.task_id).call()[3]
    log.info(f"epoch {claim.epoch}: claimed with a bond ({receipt['gasUsed']:,} gas), challenge window until {window}")
    return nonce, outcome, receipt["blockNumber"], receipt["gasUsed"]


def claim_accuracy(
    protocol: Protocol,
    account,
    task_id: int,
    salt: bytes,
    call: tuple[bytes, list[int], list[bytes]],
    model_commitment: bytes,
    outcome,
    poll_seconds: float = POLL_SECONDS,
) -> dict:
    """An optimistic task's accuracy, claimed with a bond as the proven ``outcome`` (its accuracy
    folder's count and range flag) says; each dispute answered with the folder's proofs (``call``:
    submitAccuracy's proof, instances and VKA words); settled after the window. The receipt that
    settled the task."""
    rounds = protocol.rounds
    correct, out_of_range = outcome.correct, outcome.range_error != 0
    bond = rounds.functions.proposerBond(task_id).call()
    receipt = protocol.chain.execute(account, rounds, "claimAccuracy", task_id, correct, out_of_range, value=bond)
    (claimed,) = rounds.events.AccuracyClaimed().process_receipt(receipt)
    nonce, from_block = claimed["args"]["nonce"], receipt["blockNumber"]
    log.info(f"  accuracy claimed with a bond: {correct} correct ({receipt['gasUsed']:,} gas)")
    while True:
        for event in protocol.chain.logs(rounds.events.AccuracyChallenged, from_block, taskId=task_id, nonce=nonce):
            challenger = event["args"]["challenger"]
            if rounds.functions.accuracyDispute(task_id, nonce, challenger).call():
                log.info(f"  the accuracy claim is challenged by {challenger}: answering with the proof")
                protocol.chain.execute(
                    account, rounds, "answerAccuracy", task_id, challenger, salt, *call, model_commitment
                )
        state, _, _, deadline, open_disputes, _, _ = rounds.functions.accuracyClaim(task_id).call()
        if state == State.VOID:
            raise StakeLearnError(f"a challenge voided the accuracy claim of task {task_id} (nonce {nonce})")
        if protocol.chain.now() > deadline and open_disputes == 0:
            receipt = protocol.chain.execute(account, rounds, "finalizeAccuracy", task_id)
            log.info(f"  the accuracy claim is final after its window ({receipt['gasUsed']:,} gas to settle)")
            return receipt
        protocol.chain.wait_past(deadline, poll_seconds)
