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
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from eth_utils import keccak

from stakelearn.files import write_bytes_atomic, write_json_atomic
from stakelearn.models.quantize import FixedPoint
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.protocol import Protocol, deploy_protocol, new_account, round_args
from stakelearn.pipeline.contracts.types import ETHER, Periods, ProtocolConfig, TaskParams
from stakelearn.pipeline.contracts.verifiers import verifier_only_gas, verify_on_chain
from stakelearn.prover import steps
from stakelearn.prover.accuracy import AccuracyCircuit
from stakelearn.prover.circuit import PreparedCircuit, RoundCircuit, prepare
from stakelearn.prover.round import COMMITMENTS, prove_round
from stakelearn.prover.rounds import OneProofRound
from stakelearn.tables import markdown_table

D = 16
EPOCHS = 3  # the task's epochs; two are submitted, then training ends
FEE = 10**17
INITIAL = keccak(text="initial model")

EPOCH = "submitRound (epoch, flags)"  # an epoch after the first: its storage is warm, as most are


class ProvenRound(NamedTuple):
    """One proven round at n clients: its circuit, prepared keys, folder and commitments (the
    updates', then the aggregate's)."""

    circuit: RoundCircuit
    prepared: PreparedCircuit
    folder: Path
    commitments: list[bytes]


@dataclass
class Meter:
    """Sends transactions on one chain and keeps each one's gas under its label."""

    chain: Chain
    gas: dict[str, int] = field(default_factory=dict)

    def send(self, account, contract, function: str, *args, value: int = 0, label: str | None = None) -> None:
        self.gas[label or function] = self.chain.execute(account, contract, function, *args, value=value)["gasUsed"]


def _sample(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    base = rng.integers(-40, 41, size=D)
    updates = base + rng.integers(-6, 7, size=(n, D))
    updates[-1] = -2 * base
    return np.clip(updates, -128, 128)


def prove_sample(n: int, workdir: Path) -> ProvenRound:
    """The round of :func:`_sample` proven with f = (n - 3) // 2 and m = n - f, at the default fixed point."""
    f = (n - 3) // 2
    circuit = RoundCircuit(n=n, f=f, m=n - f, d=D, max_int=FixedPoint().max_int)  # the default fixed point
    folder = workdir / f"round-{n}"
    prove_round(_sample(n), circuit, folder)
    prepared = prepare(circuit)
    data = json.loads((folder / COMMITMENTS).read_text())
    commitments = [bytes.fromhex(c) for c in [*data["updates"], data["aggregate"]]]
    return ProvenRound(circuit, prepared, folder, commitments)


def deploy(chain: Chain, proven: ProvenRound) -> Protocol:
    """The protocol with the round's verifier; no unbonding or evaluation wait."""
    # The accuracy verifier is deployed for createTask; submitAccuracy's gas comes from the demo,
    # whose model the accuracy circuit takes (this round's d=16 vector is no model).
    accuracy = prepare(AccuracyCircuit(samples=32, model_bound=proven.circuit.bound))
    return deploy_protocol(
        chain,
        OneProofRound(proven.prepared),
        accuracy,
        ProtocolConfig(unbonding_seconds=0, periods=Periods(evaluation_seconds=0)),
    )


def task_params(protocol: Protocol, circuit: RoundCircuit) -> TaskParams:
    return TaskParams(
        keccak(text="spec"),
        circuit.n,
        circuit.f,
        circuit.m,
        0,  # Multi-Krum
        9_000,
        EPOCHS,
        FEE,
        protocol.round_verifier.contract.address,
        INITIAL,
        keccak(text="evaluation set"),
        32,
        protocol.accuracy_verifier.address,
    )


def start_task(meter: Meter, protocol: Protocol, proven: ProvenRound, requester, clients: list) -> None:
    """Every client stakes; the requester creates the task; every client enrolls (the last starts
    it); one client posts its commitment itself."""
    for client in clients:
        meter.send(client, protocol.registry, "stake", value=ETHER)
    params = task_params(protocol, proven.circuit)
    escrow = protocol.config.base_fee_wei + params.escrow
    meter.send(requester, protocol.tasks, "createTask", params.as_abi(), value=escrow)
    for i, client in enumerate(clients):
        label = "enroll (starts the task)" if i == len(clients) - 1 else "enroll"
        meter.send(client, protocol.tasks, "enroll", 1, label=label)
    # A client that does not trust the aggregator to include it posts its commitment itself.
    label = "postCommitment (optional, per client)"
    meter.send(clients[0], protocol.tasks, "postCommitment", 1, 1, proven.commitments[0], label=label)


def submit_epochs(meter: Meter, protocol: Protocol, proven: ProvenRound, clients: list) -> None:
    """Two epochs of the same proven round, each signed by every client: the first (cold storage),
    then one as most are."""
    previous = INITIAL
    proof = proven.folder / steps.PROOF
    for epoch, label in ((1, "submitRound (first epoch)"), (2, EPOCH)):
        signatures = [protocol.sign_update(c, 1, epoch, cm) for c, cm in zip(clients, proven.commitments)]
        arguments = round_args(1, epoch, previous, proven.commitments, signatures, proof, proven.prepared.vka)
        meter.send(clients[0], protocol.tasks, "submitRound", arguments, label=label)
        previous = keccak(proven.commitments[-1])


def close_task(meter: Meter, protocol: Protocol, proven: ProvenRound, requester, clients: list) -> None:
    """An equivocation slashed, training ended, the task settled, a credit and a stake withdrawn."""
    # A client that signed two commitments for one epoch is slashed on the two signatures.
    other = keccak(text="a second commitment") * 2
    signed = [protocol.sign_update(clients[-1], 1, 2, c) for c in (proven.commitments[-2], other)]
    meter.send(
        requester, protocol.tasks, "reportEquivocation", 1, 2, proven.commitments[-2], signed[0], other, signed[1]
    )
    meter.send(requester, protocol.tasks, "endTraining", 1)
    meter.chain.travel(1)  # past the deadline
    meter.send(clients[1], protocol.tasks, "settle", 1, label="settle (no accuracy proof: forfeit)")
    paid = next(c for c in clients if protocol.credit_of(c.address) > 0)
    meter.send(paid, protocol.tasks, "withdrawCredit")
    meter.send(clients[0], protocol.registry, "requestWithdrawal")
    meter.send(clients[0], protocol.registry, "withdraw")


def verifier_gas(protocol: Protocol, proven: ProvenRound) -> dict[str, int]:
    """The round's verification alone: through RoundVerifier, and by the ezkl verifier."""
    proof, vka = proven.folder / steps.PROOF, proven.prepared.vka
    hexes = [c.hex() for c in proven.commitments]
    return {
        "verifyRound (RoundVerifier)": verify_on_chain(protocol.round_verifier, proof, vka, hexes).gas_used,
        "verifyProof (ezkl verifier alone)": verifier_only_gas(protocol.round_verifier, proof, vka),
    }


def measure(n: int, workdir: Path) -> dict[str, int]:
    """Every protocol function's gas at ``n`` clients, in the order a task calls them."""
    proven = prove_sample(n, workdir)
    chain = Chain.embedded()
    protocol = deploy(chain, proven)
    meter = Meter(chain)
    requester = new_account(chain, 10 * ETHER)
    clients = [new_account(chain, 3 * ETHER) for _ in range(n)]
    start_task(meter, protocol, proven, requester, clients)
    submit_epochs(meter, protocol, proven, clients)
    close_task(meter, protocol, proven, requester, clients)
    return {**meter.gas, **verifier_gas(protocol, proven)}


def gas_text(results: dict[int, dict[str, int]]) -> str:
    """``gas.md``: every function's gas per n, and each n's epoch split into verifier, checks and bookkeeping."""
    sizes = list(results)
    names = list(next(iter(results.values())))
    lines = [
        markdown_table(
            ["function", *(f"n={n}" for n in sizes)],
            [[name, *(f"{results[n][name]:,}" for n in sizes)] for name in names],
        )
    ]
    for n in sizes:
        g = results[n]
        lines.append(
            f"\nn={n}: one epoch {g[EPOCH]:,} gas = ezkl verifier {g['verifyProof (ezkl verifier alone)']:,} "
            f"+ RoundVerifier checks {g['verifyRound (RoundVerifier)'] - g['verifyProof (ezkl verifier alone)']:,} "
            f"+ signatures, rollup and records {g[EPOCH] - g['verifyRound (RoundVerifier)']:,}"
        )
    return "\n".join(lines)


def run_gas(out: Path, sizes: tuple[int, ...] = (8, 16)) -> dict[int, dict[str, int]]:
    """Measure each n in ``sizes``; write ``out/gas.json`` and ``out/gas.md`` (:func:`gas_text`)."""
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, Path(tmp)) for n in sizes}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "gas.json", {str(n): g for n, g in results.items()})
    write_bytes_atomic(out / "gas.md", (gas_text(results) + "\n").encode())
    return results


def run_gas_optimistic(out: Path, sizes: tuple[int, ...] = (8, 16)) -> list[str]:
    """Measure each n in ``sizes`` with optimistic rounds (gas_optimistic); write
    ``out/gas-optimistic.json`` and ``out/gas-optimistic.md``; return the lines."""
    from stakelearn.pipeline.experiments import gas_optimistic

    with tempfile.TemporaryDirectory() as tmp:
        results = {n: gas_optimistic.measure(n, Path(tmp)) for n in sizes}
    lines = gas_optimistic.optimistic_lines(results, ProtocolConfig().optimistic)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "gas-optimistic.json", {str(n): g for n, g in results.items()})
    write_bytes_atomic(out / "gas-optimistic.md", ("\n".join(lines) + "\n").encode())
    return lines
