"""`stakelearn prove`: prove one Multi-Krum round over client updates, in one proof or in chunks."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.pipeline.cli.options import add_circuit_options, chunk_circuit, quantized, read_json, round_circuit
from stakelearn.pipeline.contracts.signing import check_signed_records
from stakelearn.prover.chunked_round import chunk_size_for
from stakelearn.prover.rounds import round_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "updates", nargs="+", type=Path, metavar="UPDATE", help="a client's exported .onnx model or .npy vector"
    )
    add_circuit_options(parser)
    parser.add_argument(
        "--signed",
        nargs="+",
        type=Path,
        default=None,
        metavar="SIGNED",
        help="the clients' signed commitments (`stakelearn commit`), one per UPDATE in the same order: "
        "an update that is not the one its client signed is refused",
    )
    parser.add_argument("--out", type=Path, required=True, help="new folder for the proof, commitments and summary")
    parser.add_argument(
        "--prover-memory",
        type=float,
        default=2048,
        metavar="MB",
        help="memory per prover process when --chunk is not given: one proof if the round fits, "
        "else the largest chunk that fits (default 2048)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="prove the chunks as tasks on this Ray cluster (host:port, or auto) instead of local processes",
    )
    parser.add_argument("--workers", type=int, default=None, help="local prover processes (default: what fits)")


def run(args: argparse.Namespace) -> int:
    if args.out.exists():  # before any work
        raise InputError(f"output folder {args.out} already exists; choose another --out or remove it")
    updates = quantized(args, args.updates)
    circuit = round_circuit(args, len(args.updates), updates.shape[1])
    signed = None
    if args.signed:
        signed = [read_json(path) for path in args.signed]
        check_signed_records(signed)
    chunk = args.chunk
    if chunk is None:
        c = circuit
        chunk = chunk_size_for(c.n, c.f, c.m, c.d, c.max_int, args.prover_memory, c.num_inner_cols)
    if not 1 <= chunk <= circuit.d:
        raise InputError(f"--chunk must be 1..d={circuit.d}, got {chunk}")
    sources = [str(p) for p in args.updates]
    one_proof = chunk == circuit.d and args.ray_address is None
    round_ = round_for(circuit if one_proof else chunk_circuit(circuit, chunk), circuit.d, args.srs)
    outcome = round_.prove(
        updates, args.out, signed=signed, sources=sources, ray_address=args.ray_address, workers=args.workers
    )
    print(round_.summary(args.out, outcome), end="")
    print(f"round proof written to {args.out}")
    return 0
