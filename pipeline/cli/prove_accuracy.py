"""`stakelearn prove-accuracy`: prove how many samples of an evaluation set a model gets right:
a run's final model (``--run``), or any ONNX classifier (``--model``) with its own parameters or
a flat float vector (``--parameters``, e.g. a round's aggregate over m)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stakelearn.errors import InputError
from stakelearn.prover.accuracy import SUMMARY, AccuracyOutcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", type=Path, help="the aggregator's run folder (demo --out)")
    source.add_argument("--model", type=Path, help="an ONNX classifier (logits out, batch first)")
    parser.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="evaluation set .npz with 'x' and 'y' (integer labels): with --run, x is N x 64 grey levels 0..16 "
        "(default: the requester's set in the run folder); with --model, the inputs in the model's shape, batch first",
    )
    parser.add_argument("--out", type=Path, required=True, help="new folder for the proof")
    parser.add_argument(
        "--parameters",
        type=Path,
        default=None,
        help="with --model: a .npy flat float vector in the model's float-initializer order to prove instead of "
        "its own parameters",
    )
    parser.add_argument("--scale", type=int, default=9, help="with --model: fixed-point bits s (default 9)")
    parser.add_argument("--samples-per-proof", type=int, default=8, help="with --model: samples per proof (default 8)")


def run(args: argparse.Namespace) -> int:
    if args.run_dir is not None:
        from stakelearn.pipeline.node.task_lifecycle import prove_run_accuracy

        prove_run_accuracy(args.run_dir, args.evaluation, args.out)
    else:
        outcome = _prove_onnx(args)
        print(
            f"proven: {outcome.correct} of {outcome.samples} correct; float model: {outcome.float_correct}; "
            f"quantised model (numpy): {outcome.quantized_correct}"
        )
    print((args.out / SUMMARY).read_text(), end="")
    print(f"accuracy proof written to {args.out}")
    return 0


def _prove_onnx(args: argparse.Namespace) -> AccuracyOutcome:
    from stakelearn.circuits.onnx_accuracy import default_layout, model_parameters, parameter_count
    from stakelearn.prover.onnx_accuracy import OnnxAccuracyCircuit, parse_model
    from stakelearn.prover.onnx_proof import default_input_range, prove_onnx_accuracy, quantized_parameters

    if args.evaluation is None:
        raise InputError("--model needs --evaluation EVAL.npz with 'x' and 'y'")
    try:
        model = args.model.read_bytes()
        with np.load(args.evaluation) as data:
            x, y = data["x"], data["y"]
        parameters = None if args.parameters is None else np.load(args.parameters)
    except KeyError as error:
        raise InputError(f"{args.evaluation} has no array {error}: it needs 'x' and 'y'") from None
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the inputs: {error}") from None
    parsed = parse_model(model)
    layout = default_layout(parsed)
    if parameters is None:
        parameters = model_parameters(parsed, layout)
    elif parameters.ndim != 1 or not np.issubdtype(parameters.dtype, np.number):
        raise InputError(f"--parameters must hold one flat vector of numbers, got shape {parameters.shape}")
    elif len(parameters) != parameter_count(layout):
        raise InputError(
            f"--parameters holds {len(parameters)} values, the model has {parameter_count(layout)} parameters"
        )
    params = quantized_parameters(parameters, args.scale)
    circuit = OnnxAccuracyCircuit.of(
        model,
        layout=layout,
        samples=args.samples_per_proof,
        scale_bits=args.scale,
        model_bound=max(1, int(np.abs(params).max(initial=0))),
        input_range=default_input_range(x, args.scale),
    )
    return prove_onnx_accuracy(params, x, y, circuit, args.out, float_parameters=parameters)
