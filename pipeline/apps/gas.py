"""`stakelearn gas`: the gas of every protocol function and of one full epoch, at n = 8 and 16.

Each point proves a real round (d = 16 parameters, one far-away update), deploys the verifier,
registry and protocol on the embedded EVM, and runs a task through two epochs (each flags the
far update), an equivocation report (the only slash), completion and withdrawals. The epoch's gas
is split into the reusable verifier alone, RoundVerifier's checks (commitments, instances, VKA
pin) and the protocol's bookkeeping (signatures, state root, flags, records).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from eth_utils import keccak

from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.apps.tables import markdown_table
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import deploy_protocol, new_account, round_args
from stakelearn.pipeline.contracts.types import ETHER, Periods, ProtocolConfig, TaskParams
from stakelearn.pipeline.contracts.verifiers import verifier_only_gas, verify_on_chain
from stakelearn.prover import steps
from stakelearn.prover.accuracy import AccuracyCircuit
from stakelearn.prover.circuit import RoundCircuit, prepare
from stakelearn.prover.round import COMMITMENTS, prove_round

D = 16


EPOCH = "submitRound (epoch, flags)"  # an epoch after the first: its storage is warm, as most are


def _sample(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    base = rng.integers(-40, 41, size=D)
    updates = base + rng.integers(-6, 7, size=(n, D))
    updates[-1] = -2 * base
    return np.clip(updates, -128, 128)


def measure(n: int, workdir: Path) -> dict:
    f = (n - 3) // 2
    circuit = RoundCircuit(n=n, f=f, m=n - f, d=D, max_int=FixedPoint().max_int)  # the default fixed point
    folder = workdir / f"round-{n}"
    prove_round(_sample(n), circuit, folder)
    prepared = prepare(circuit)
    data = json.loads((folder / COMMITMENTS).read_text())
    commitments = [bytes.fromhex(c) for c in [*data["updates"], data["aggregate"]]]
    chain = Chain.embedded()
    # The accuracy verifier is deployed for createTask; submitAccuracy's gas comes from the demo,
    # whose model the accuracy circuit takes (this round's d=16 vector is no model).
    accuracy = prepare(AccuracyCircuit(samples=32, model_bound=circuit.bound))
    protocol = deploy_protocol(
        chain, prepared, accuracy, ProtocolConfig(unbonding_seconds=0, periods=Periods(evaluation_seconds=0))
    )
    gas: dict[str, int] = {}

    def send(account, contract, function, *args, value=0, label=None):
        gas[label or function] = chain.execute(account, contract, function, *args, value=value)["gasUsed"]

    requester = new_account(chain, 10 * ETHER)
    clients = [new_account(chain, 3 * ETHER) for _ in range(n)]
    for client in clients:
        send(client, protocol.registry, "stake", value=ETHER)
    fee, epochs, initial = 10**17, 3, keccak(text="initial model")
    params = TaskParams(
        keccak(text="spec"),
        n,
        f,
        n - f,
        0,  # Multi-Krum
        9_000,
        epochs,
        fee,
        protocol.round_verifier.contract.address,
        initial,
        keccak(text="evaluation set"),
        32,
        protocol.accuracy_verifier.address,
    )
    send(requester, protocol.tasks, "createTask", params.as_abi(), value=protocol.config.base_fee_wei + params.escrow)
    for i, client in enumerate(clients):
        send(client, protocol.tasks, "enroll", 1, label="enroll (starts the task)" if i == n - 1 else "enroll")
    # A client that does not trust the aggregator to include it posts its commitment itself.
    send(
        clients[0],
        protocol.tasks,
        "postCommitment",
        1,
        1,
        commitments[0],
        label="postCommitment (optional, per client)",
    )
    previous = initial
    for epoch, label in ((1, "submitRound (first epoch)"), (2, EPOCH)):
        signatures = [protocol.sign_update(c, 1, epoch, commitment) for c, commitment in zip(clients, commitments)]
        send(
            clients[0],
            protocol.tasks,
            "submitRound",
            round_args(1, epoch, previous, commitments, signatures, folder / steps.PROOF, prepared.vka),
            label=label,
        )
        previous = keccak(commitments[-1])
    # A client that signed two commitments for one epoch is slashed on the two signatures.
    other = keccak(text="a second commitment") * 2
    signed = [protocol.sign_update(clients[-1], 1, 2, c) for c in (commitments[-2], other)]
    send(requester, protocol.tasks, "reportEquivocation", 1, 2, commitments[-2], signed[0], other, signed[1])
    send(requester, protocol.tasks, "endTraining", 1)
    chain.travel(1)  # past the deadline
    send(clients[1], protocol.tasks, "settle", 1, label="settle (no accuracy proof: forfeit)")
    paid = next(c for c in clients if protocol.credit_of(c.address) > 0)
    send(paid, protocol.tasks, "withdrawCredit")
    send(clients[0], protocol.registry, "requestWithdrawal")
    send(clients[0], protocol.registry, "withdraw")
    hexes = [c.hex() for c in commitments]
    gas["verifyRound (RoundVerifier)"] = verify_on_chain(
        protocol.round_verifier, folder / steps.PROOF, prepared.vka, hexes
    ).gas_used
    gas["verifyProof (ezkl verifier alone)"] = verifier_only_gas(
        protocol.round_verifier, folder / steps.PROOF, prepared.vka
    )
    return gas


def run_gas(out: Path, sizes: tuple[int, ...] = (8, 16)) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, Path(tmp)) for n in sizes}
    names = list(next(iter(results.values())))
    lines = [
        markdown_table(
            ["function", *(f"n={n}" for n in sizes)],
            [[name, *(f"{results[n][name]:,}" for n in sizes)] for name in names],
        )
    ]
    epoch = EPOCH
    for n in sizes:
        g = results[n]
        lines.append(
            f"\nn={n}: one epoch {g[epoch]:,} gas = ezkl verifier {g['verifyProof (ezkl verifier alone)']:,} "
            f"+ RoundVerifier checks {g['verifyRound (RoundVerifier)'] - g['verifyProof (ezkl verifier alone)']:,} "
            f"+ signatures, rollup and records {g[epoch] - g['verifyRound (RoundVerifier)']:,}"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "gas.json", {str(n): g for n, g in results.items()})
    write_bytes_atomic(out / "gas.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return results
