"""What the CNN task costs, measured: the round and accuracy circuits as `task create` pairs them
(n = 4, f = 0, m = 4, 2^-9, 2 cells per row, 8 samples per accuracy proof), one round proven over
four clients' models and the accuracy of their aggregate proven on the requester's 32 samples,
both verified on the embedded EVM. Prints one line per figure.

    (cd examples/flower-cnn && ../../.venv/bin/python -m flower_cnn.measure --out /tmp/cnn-measure)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from flower_cnn.task import SEED, TinyCNN, evaluation_set, export, train, training_part
from stakelearn.circuits.krum import KrumParams, krum_round
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.contracts.round_on_chain import verify_round_on_chain
from stakelearn.pipeline.contracts.verifiers import verify_accuracy_on_chain
from stakelearn.progress import show_progress
from stakelearn.prover.circuit import RoundCircuit
from stakelearn.prover.onnx_accuracy import paired_onnx_circuits
from stakelearn.prover.onnx_proof import default_input_range, prove_onnx_accuracy
from stakelearn.prover.rounds import round_for

CLIENTS, SCALE_BITS, SAMPLES_PER_PROOF = 4, 9, 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="a new folder for the proofs (default: a temporary one)")
    args = parser.parse_args()
    show_progress()
    out = args.out or Path(tempfile.mkdtemp(prefix="cnn-measure-"))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    model = TinyCNN()
    train(model, *training_part(), epochs=3)
    export(model, out / "model.onnx")
    onnx_bytes = (out / "model.onnx").read_bytes()
    trained = torch.cat([p.detach().reshape(-1) for p in model.state_dict().values()]).double().numpy()
    fixed_point = FixedPoint(scale_bits=SCALE_BITS, clip=2.0)
    rng = np.random.default_rng(SEED)
    models = np.stack([quantize(trained + rng.normal(0, 0.01, trained.shape), fixed_point) for _ in range(CLIENTS)])
    params = KrumParams(CLIENTS, 0, CLIENTS)
    total = krum_round(models, params).total
    x, y = evaluation_set()
    round_circuit = RoundCircuit(
        n=CLIENTS, f=0, m=CLIENTS, d=len(trained), max_int=fixed_point.max_int, num_inner_cols=2
    )
    input_range = default_input_range(x, SCALE_BITS, params.weight)
    round_circuit, accuracy_circuit = paired_onnx_circuits(
        round_circuit, onnx_bytes, SAMPLES_PER_PROOF, SCALE_BITS, input_range
    )
    round_ = round_for(round_circuit, len(trained))
    round_stats, accuracy_stats = {}, {}
    round_.prove(models, out / "round", stats=round_stats)
    floats = total / (params.weight * 2.0**SCALE_BITS)
    outcome = prove_onnx_accuracy(total, x, y, accuracy_circuit, out / "accuracy", accuracy_stats, floats)
    round_gas = verify_round_on_chain(out / "round", Chain.embedded()).gas_used
    accuracy_gas = verify_accuracy_on_chain(out / "accuracy", Chain.embedded())
    rows = {name: json.loads((out / name / "settings.json").read_text())["num_rows"] for name in ("round", "accuracy")}
    figures = {
        "parameters d": len(trained),
        "round circuit rows": rows["round"],
        "accuracy circuit rows (8 samples)": rows["accuracy"],
        "logrows (both)": round_.prepared.logrows,
        "round prove s": round(round_stats["prove"].seconds, 1),
        "round prove peak MB": round(round_stats["prove"].peak_mb),
        "accuracy prove s (4 proofs)": round(accuracy_stats["prove"].seconds, 1),
        "accuracy prove peak MB": round(accuracy_stats["prove"].peak_mb),
        "round verify gas": round_gas,
        "accuracy verify gas (4 proofs)": accuracy_gas,
        "float model correct": f"{outcome.float_correct} of {outcome.samples}",
        "quantised model correct (numpy)": f"{outcome.quantized_correct} of {outcome.samples}",
        "proven correct": f"{outcome.correct} of {outcome.samples}",
    }
    for name, value in figures.items():
        print(f"{name}: {value:,}" if isinstance(value, int) else f"{name}: {value}")


if __name__ == "__main__":
    main()
