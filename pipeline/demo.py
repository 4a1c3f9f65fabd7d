"""The main job until the end-to-end federated task exists: one proven Multi-Krum round on
sample updates, verified locally and by the generated Solidity verifier on an EVM.

Honest clients send noisy copies of one shared direction (as clients training on similar data
do); attackers send its sign-flipped, amplified copy. Krum should flag exactly the attackers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.pipeline.chain import Chain
from stakelearn.pipeline.evm_verify import verify_round_on_chain
from stakelearn.prover.circuit import RoundCircuit
from stakelearn.prover.round import SUMMARY, prove_round, verify_round


def sample_updates(n: int, d: int, attackers: int, seed: int) -> np.ndarray:
    """``n`` float updates of length ``d``; the last ``attackers`` are sign-flip attacks."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(0.0, 0.2, size=d)
    updates = direction + rng.normal(0.0, 0.05, size=(n, d))
    updates[n - attackers :] = -3.0 * direction + rng.normal(0.0, 0.05, size=(attackers, d))
    return updates


def run_demo(
    out: Path, n: int, f: int, attackers: int, d: int, seed: int, rpc_url: str | None, inner_cols: int
) -> int:
    if not 0 <= attackers <= f:
        raise InputError(f"--attackers must be in 0..f={f}: Krum only guarantees robustness up to f")
    circuit = RoundCircuit(n=n, f=f, m=n - f, d=d, max_int=FixedPoint().max_int, num_inner_cols=inner_cols)
    if out.exists():
        shutil.rmtree(out)
    updates_dir = out / "updates"
    updates_dir.mkdir(parents=True)
    floats = sample_updates(n, d, attackers, seed)
    paths = []
    for i, row in enumerate(floats):
        paths.append(updates_dir / f"client_{i}.npy")
        np.save(paths[-1], row)
    quantized = np.stack([quantize(row, FixedPoint()) for row in floats])
    round_dir = out / "round"
    prove_round(quantized, circuit, round_dir, sources=[p.name for p in paths])
    print((round_dir / SUMMARY).read_text())
    outcome = verify_round(round_dir)
    chain = Chain.rpc(rpc_url) if rpc_url else Chain.embedded()
    evm = verify_round_on_chain(round_dir, chain)
    attacker_ids = list(range(n - attackers, n))
    flagged = [i for i, bit in enumerate(outcome.mask) if bit == 0]
    print(f"attackers: {attacker_ids}; flagged by Krum: {flagged}")
    print(f"local verification: ok; EVM verification on {chain.name}: "
          f"{'ok, ' + str(evm.gas_used) + ' gas' if evm.ok else 'FAILED: ' + evm.reason}")
    return 0 if evm.ok and set(attacker_ids) <= set(flagged) else 1
