"""What the explorer shows of a protocol and its tasks, read from the chain alone.

Every figure is an event or a view. A task's epochs are the rounds ``audit`` rebuilds and
re-checks (``apps.audit.audit_chain``), with the same selection, absences, flags and slashes, and
the audit's problems are shown with them. Beside them: the proven (eager) or claimed and final
(optimistic) Krum scores as ratios to the round's reference score, the gas of the transactions
that landed each round, every optimistic claim with its state and time left, each client's stake
after every epoch (rebuilt from the registry's events), and the accuracy and payout once settled.

A run folder adds the test accuracy of every epoch's global model, and only once
``apps.audit.audit_run`` finds its store, updates and models to be the chain's.

The functions that turn chain records into rows are pure; ``task_view`` and ``protocol_view``
do the reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from eth_utils import keccak, to_hex
from web3.logs import DISCARD

from stakelearn.errors import InputError
from stakelearn.pipeline.apps.audit import audit_chain, audit_run, final_claim_events
from stakelearn.pipeline.contracts.optimistic import Claim, Outcome, State
from stakelearn.pipeline.contracts.protocol import Protocol
from stakelearn.pipeline.contracts.types import TaskParams, TaskStatus, Verification
from stakelearn.pipeline.federation.rules import reference_score
from stakelearn.verifier_contracts.build import load_artifact

RULE_NAMES = ("Multi-Krum", "NNM then Multi-Krum")


# --- pure: chain records to rows ---------------------------------------------------------------


def bits(mask: int, n: int) -> list[int]:
    return [i for i in range(n) if mask >> i & 1]


def score_ratios(scores: list[int], absent: list[int], f: int) -> list[float | None]:
    """Each present client's raw Krum score over the round's reference score (the (p - f)-th
    smallest present score, as MPSRollup flags against it); None for an absent client."""
    n = len(scores)
    if n == 0:
        return []
    absent_mask = np.isin(np.arange(n), absent)
    reference = max(reference_score(np.array(scores, dtype=object), f, absent_mask), 1)
    return [None if absent_mask[i] else int(scores[i]) / reference for i in range(n)]


def epoch_row(record: dict, n: int, f: int, gas: int, verification: dict) -> dict:
    """One epoch's row: a round as the audit rebuilt it (or as a claim not yet final states it),
    with its left-out clients, score ratios, gas and verification state."""
    selected = bits(record["selected_mask"], n)
    left_out = [i for i in range(n) if i not in selected and i not in record["absent"]]
    return {
        "epoch": record["epoch"],
        "selected": selected,
        "left_out": left_out,
        "absent": record["absent"],
        "flagged": record["flagged"],
        "slashed": record["slashed"],
        "scores": [str(s) for s in record["scores"]],  # raw scores exceed a JavaScript number's precision
        "ratios": score_ratios(record["scores"], record["absent"], f),
        "gas": gas,
        "verification": verification,
        "tx_hash": record["tx_hash"],
    }


def claimed_record(event: dict, n: int, slashed: list[int]) -> dict:
    """A claim not yet final as a round record: its selection and scores, and the absences and
    flags the protocol derived from it when it was proposed."""
    claim, outcome = Claim.from_abi(event["args"]["claim"]), Outcome.from_abi(event["args"]["outcome"])
    return {
        "epoch": claim.epoch,
        "selected_mask": claim.selected_mask,
        "absent": bits(outcome.absent_mask, n),
        "flagged": bits(outcome.flagged_mask, n),
        "slashed": slashed,
        "scores": list(claim.scores),
        "tx_hash": to_hex(event["transactionHash"]),
    }


def stake_series(changes: list[tuple[int, str, int]], clients: list[str], blocks: list[int]) -> list[list[int]]:
    """Each client's stake after each of ``blocks``: the sum of its registry changes (block,
    client, signed amount) up to and including that block."""
    series = []
    for client in clients:
        mine = [(block, delta) for block, who, delta in changes if who == client]
        series.append([sum(delta for block, delta in mine if block <= at) for at in blocks])
    return series


def claim_state(proposed: dict, final: set[int], voided: set[int], pending: tuple, challenges: int, now: int) -> dict:
    """An optimistic claim (RoundProposed's arguments) and its state: final, voided, or (the
    task's latest) pending or challenged, with the seconds left in its challenge window."""
    nonce, deadline = proposed["nonce"], proposed["challengeDeadline"]
    if nonce in final:
        state = "final"
    elif nonce in voided:
        state = "voided"
    elif pending[2] == nonce and State(pending[0]) == State.PENDING:
        state = "challenged" if pending[4] else "pending"
    else:
        state = "superseded"
    in_window = state in ("pending", "challenged")
    return {
        "epoch": proposed["epoch"],
        "nonce": nonce,
        "proposer": proposed["proposer"],
        "state": state,
        "challenges": challenges,
        "window_ends": deadline,
        "seconds_left": max(0, deadline - now) if in_window else None,
        "open_disputes": pending[4] if state == "challenged" else 0,
    }


def deadlines(status: TaskStatus, phase_started: int, periods: dict, evaluation_deadline: int) -> dict:
    """The deadlines of the task's current phase (chain time, seconds)."""
    if status == TaskStatus.OPEN:
        return {"enrollment closes": phase_started + periods["enrollment"]}
    if status == TaskStatus.ACTIVE:
        return {
            "commit window closes": phase_started + periods["commit"],
            "round due": phase_started + periods["round"],
        }
    if status == TaskStatus.EVALUATING:
        return {"evaluation step due": evaluation_deadline}
    return {}


def payout(events: dict) -> dict | None:
    """The proven (or claimed and final) accuracy and what the settlement paid, once settled."""
    result = {}
    if events["proven"]:  # a final accuracy claim settles through the same event
        a = events["proven"][-1]["args"]
        how = "claimed, final after its window" if events["claimed"] else "proven"
        result.update(correct=a["correct"], samples=a["samples"], target_reached=a["targetReached"], how=how)
    if events["completed"]:
        a = events["completed"][-1]["args"]
        result.update(rewarded=str(a["rewarded"]), refunded=str(a["refunded"]), burnt=str(a["burnt"]))
    return result or None


# --- the reads ---------------------------------------------------------------------------------


def protocol_view(protocol: Protocol) -> dict:
    """The protocol's tasks, one line each."""
    tasks = []
    for task_id in range(1, protocol.task_count() + 1):
        state, params = protocol.task(task_id), protocol.task_params(task_id)
        tasks.append(
            {
                "id": task_id,
                "status": state.status.name.lower(),
                "epochs_run": state.epochs_run,
                "max_epochs": params.max_epochs,
                "clients": params.n,
                "verification": Verification(params.verification).name.lower(),
                "requester": state.requester,
            }
        )
    return {"protocol": protocol.tasks.address, **chain_view(protocol), "tasks": tasks}


def chain_view(protocol: Protocol) -> dict:
    chain = protocol.chain
    return {"chain": chain.name, "chain_id": chain.chain_id, "block": chain.w3.eth.block_number, "now": chain.now()}


class Audit(NamedTuple):
    """What ``audit_chain`` found for a task, and the block it started in (None: not yet)."""

    problems: list[str]
    rounds: list[dict]
    started_at: int | None


def audited(protocol: Protocol, task_id: int, circuits: tuple | None = None) -> Audit:
    """The task's audit (nothing to audit before it starts); an InputError for a task that does
    not exist."""
    count = protocol.task_count()
    if not 1 <= task_id <= count:
        raise InputError(f"task {task_id} does not exist on the protocol at {protocol.tasks.address} ({count} tasks)")
    started = protocol.logs("TaskStarted", taskId=task_id)
    if not started:
        return Audit([], [], None)
    return Audit(*audit_chain(protocol, task_id, circuits), started[0]["blockNumber"])


def task_view(protocol: Protocol, task_id: int, audit: Audit) -> dict:
    """Everything the page shows of one task, from events and views, around its ``audit``."""
    functions, chain = protocol.tasks.functions, protocol.chain
    state, params = protocol.task(task_id), protocol.task_params(task_id)
    verification = Verification(params.verification)
    clients = list(functions.clientsOf(task_id).call())
    problems, rounds, started_at = audit
    now = chain.now()
    optimistic = verification == Verification.OPTIMISTIC
    claims, in_window = optimistic_claims(protocol, task_id, now) if optimistic else ([], [])
    receipts = {r["epoch"]: chain.receipt(r["tx_hash"]) for r in rounds}
    gas = round_gas(protocol, task_id, params, rounds, receipts)
    epochs = [epoch_row(r, params.n, params.f, gas[r["epoch"]], round_verification(r["epoch"], claims)) for r in rounds]
    for event, claim in in_window:  # its epoch's row, marked as claimed: nothing is recorded yet
        slashed = protocol.logs("ClientSlashed", taskId=task_id, epoch=claim["epoch"])
        record = claimed_record(event, params.n, sorted(clients.index(e["args"]["client"]) for e in slashed))
        gas_used = chain.receipt(event["transactionHash"])["gasUsed"]
        epochs.append({**epoch_row(record, params.n, params.f, gas_used, claim), "claimed": True})
    blocks = ([started_at] if started_at is not None else []) + [r["block"] for r in rounds]
    stakes = stake_series(registry_changes(protocol, clients), clients, blocks) if blocks else []
    periods = {
        "enrollment": functions.ENROLLMENT_PERIOD().call(),
        "commit": functions.COMMIT_PERIOD().call(),
        "round": functions.ROUND_PERIOD().call(),
    }
    settled = {
        "proven": protocol.logs("AccuracyProven", taskId=task_id),
        "claimed": final_accuracy_claims(protocol, task_id) if optimistic else [],
        "completed": protocol.logs("TaskCompleted", taskId=task_id),
    }
    return {
        "id": task_id,
        "protocol": protocol.tasks.address,
        **chain_view(protocol),
        "status": state.status.name.lower(),
        "epochs_run": state.epochs_run,
        "params": {
            "n": params.n,
            "f": params.f,
            "m": params.m,
            "rule": RULE_NAMES[params.aggregation],
            "verification": verification.name.lower(),
            "max_epochs": params.max_epochs,
            "fee_per_epoch": str(params.fee_per_epoch),
            "escrow": str(state.escrow),
            "target_accuracy": params.desired_accuracy_bps / 10_000,
            "evaluation_size": params.evaluation_size,
            "round_verifier": params.verifier,
            "accuracy_verifier": params.accuracy_verifier,
        },
        "flag_ratio": functions.OUTLIER_BPS().call() / 10_000,
        "deadlines": deadlines(
            state.status,
            functions.phaseStartedAt(task_id).call(),
            periods,
            functions.evaluationDeadline(task_id).call() if state.status == TaskStatus.EVALUATING else 0,
        ),
        "parties": {
            "requester": state.requester,
            "aggregators": sorted({claim["proposer"] for claim in claims} | round_senders(receipts, verification)),
            "clients": [
                {"address": c, "stake": str(protocol.stake_of(c)), "credit": str(protocol.credit_of(c))}
                for c in clients
            ],
        },
        "epochs": epochs,
        "claims": claims,
        "stakes": {
            "points": ["start"] + [f"epoch {r['epoch']}" for r in rounds],
            "wei": [[str(w) for w in s] for s in stakes],
        },
        "settlement": payout(settled),
        "accuracy_claim": open_accuracy_claim(protocol, task_id, now) if optimistic else None,
        "problems": problems,
    }


def round_verification(epoch: int, claims: list[dict]) -> dict:
    """How a landed round was checked: its proof verified on submission (eager), or its claim
    final after its window (optimistic), with the disputes it survived."""
    final = [c for c in claims if c["epoch"] == epoch and c["state"] == "final"]
    if not final:
        return {"state": "verified"}
    return {"state": "final", "challenges": final[0]["challenges"]}


def optimistic_claims(protocol: Protocol, task_id: int, now: int) -> tuple[list[dict], list[tuple[dict, dict]]]:
    """Every claim proposed for the task, in order, with its state; and the one still in its
    window (pending or challenged), if any, with its RoundProposed event."""
    rounds, start = protocol.rounds, protocol.deployment_block
    logs = protocol.chain.logs

    def nonces(event) -> set[int]:
        return {e["args"]["nonce"] for e in logs(event, start, taskId=task_id)}

    final, voided = nonces(rounds.events.RoundFinalized), nonces(rounds.events.RoundVoided)
    challenged = [e["args"]["nonce"] for e in logs(rounds.events.RoundChallenged, start, taskId=task_id)]
    pending = tuple(rounds.functions.pending(task_id).call())
    proposed = logs(rounds.events.RoundProposed, start, taskId=task_id)
    states = [
        claim_state(dict(e["args"]), final, voided, pending, challenged.count(e["args"]["nonce"]), now)
        for e in proposed
    ]
    return states, [(e, s) for e, s in zip(proposed, states) if s["state"] in ("pending", "challenged")]


def open_accuracy_claim(protocol: Protocol, task_id: int, now: int) -> dict | None:
    """The task's accuracy claim still in its window (pending or challenged), if any."""
    state, claimer, nonce, deadline, disputes, correct, range_error = protocol.rounds.functions.accuracyClaim(
        task_id
    ).call()
    if State(state) != State.PENDING:
        return None
    return {
        "state": "challenged" if disputes else "pending",
        "claimer": claimer,
        "correct": correct,
        "range_error": range_error,
        "window_ends": deadline,
        "seconds_left": max(0, deadline - now),
        "open_disputes": disputes,
    }


def final_accuracy_claims(protocol: Protocol, task_id: int) -> list:
    """The task's AccuracyFinalized events: an accuracy claim that stood its window."""
    rounds = protocol.rounds
    return protocol.chain.logs(rounds.events.AccuracyFinalized, protocol.deployment_block, taskId=task_id)


def round_gas(
    protocol: Protocol, task_id: int, params: TaskParams, rounds: list[dict], receipts: dict[int, dict]
) -> dict[int, int]:
    """The gas of the transactions that landed each round: the round's own and, for a chunked
    eager round, those that staged its chunk proofs; for an optimistic round, its final claim's
    and the finalizing one."""
    chain = protocol.chain
    gas = {epoch: receipt["gasUsed"] for epoch, receipt in receipts.items()}
    if params.verification == Verification.OPTIMISTIC:
        claims = final_claim_events(protocol, task_id)
        for epoch in gas:
            if epoch in claims:
                gas[epoch] += chain.receipt(claims[epoch]["transactionHash"])["gasUsed"]
        return gas
    verifier = chain.contract(params.verifier, load_artifact("ChunkedRoundVerifier").abi)
    if verifier.functions.chunks().call() > 0:
        for r in rounds:
            gas[r["epoch"]] += staging_gas(protocol, verifier, r)
    return gas


def staging_gas(protocol: Protocol, verifier, record: dict) -> int:
    """The gas of the stageChunks transactions whose staged record a chunked round used: those of
    the stager and session whose last chunk first staged exactly the round's commitments and
    selection (another account staging the same chunks again is not counted)."""
    chain, start = protocol.chain, protocol.deployment_block
    commitments_hash = keccak(b"".join(bytes.fromhex(c) for c in record["commitments"]))
    closing = [
        e
        for e in chain.logs(verifier.events.RoundStaged, start, commitmentsHash=commitments_hash)
        if e["args"]["selectedMask"] == record["selected_mask"] and e["blockNumber"] <= record["block"]
    ]
    if not closing:
        return 0
    first = closing[0]  # the staging that made the record; a later one of the same chunks adds nothing
    (staged,) = verifier.events.ChunksStaged().process_receipt(chain.receipt(first["transactionHash"]), errors=DISCARD)
    stager, session = staged["args"]["stager"], staged["args"]["session"]
    transactions = {
        e["transactionHash"]
        for e in chain.logs(verifier.events.ChunksStaged, start, stager=stager, session=session)
        if e["blockNumber"] <= first["blockNumber"]
    }
    return sum(chain.receipt(t)["gasUsed"] for t in transactions)


def round_senders(receipts: dict[int, dict], verification: Verification) -> set[str]:
    """Who sent an eager task's rounds (an optimistic task's aggregators are its proposers)."""
    if verification == Verification.OPTIMISTIC:
        return set()
    return {receipt["from"] for receipt in receipts.values()}


def registry_changes(protocol: Protocol, clients: list[str]) -> list[tuple[int, str, int]]:
    """Every change to the clients' stakes in the registry: (block, client, signed amount)."""
    registry, logs, start = protocol.registry, protocol.chain.logs, protocol.deployment_block
    wanted = set(clients)
    changes = []
    for event, field, sign in (
        (registry.events.Staked, "amount", 1),
        (registry.events.ToppedUp, "amount", 1),
        (registry.events.Slashed, "taken", -1),
        (registry.events.Withdrawn, "amount", -1),
    ):
        changes += [
            (e["blockNumber"], e["args"]["client"], sign * e["args"][field])
            for e in logs(event, start)
            if e["args"]["client"] in wanted
        ]
    return changes


def run_accuracy(run_dir: Path, protocol: Protocol, round_, rounds: list[dict]) -> list[float]:
    """The test accuracy of each epoch's global model (epoch 0 the initial one) in a demo run
    folder, once the folder checks against the chain; an InputError naming the first
    inconsistency otherwise."""
    from stakelearn.models.digits import accuracy
    from stakelearn.pipeline.federation.task import make_federation
    from stakelearn.pipeline.node.run_folder import load_federation_config, model_path

    problems = audit_run(run_dir, protocol, round_, rounds)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"the run folder {run_dir} does not verify against the chain: {problems[0]}{more}")
    config = load_federation_config(run_dir)
    test = make_federation(config).test
    return [accuracy(np.load(model_path(run_dir, e)), test, config.hidden) for e in range(len(rounds) + 1)]
