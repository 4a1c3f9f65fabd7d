"""`stakelearn commit`: a client commits to its update and signs the commitment for a task and epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

from eth_utils import to_checksum_address

from stakelearn.errors import InputError
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.cli.options import (
    account,
    add_circuit_options,
    add_key_options,
    chunk_circuit,
    quantized,
    round_circuit,
)
from stakelearn.pipeline.contracts.signing import signed_record
from stakelearn.pipeline.node.client import sign_update_commitment
from stakelearn.pipeline.node.signer import SlashingProtection
from stakelearn.prover.rounds import round_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("update", type=Path, metavar="UPDATE", help="the client's exported .onnx model or .npy vector")
    parser.add_argument("--slot", type=int, required=True, help="the client's enrollment index in the task, 0..n-1")
    parser.add_argument("--clients", type=int, required=True, help="the task's number of clients n")
    add_circuit_options(parser)
    parser.add_argument("--task", type=int, required=True, help="the task id")
    parser.add_argument("--epoch", type=int, required=True, help="the epoch (round) this update is for, from 1")
    parser.add_argument("--chain-id", type=int, required=True, help="the chain id of the protocol's chain")
    parser.add_argument("--contract", required=True, help="the protocol contract's address")
    add_key_options(parser)
    parser.add_argument(
        "--slashing-protection",
        type=Path,
        required=True,
        metavar="FILE",
        help="the SQLite file recording every commitment this key signed (created if missing; the signer's "
        "format): a second, different commitment for one task and epoch is refused, as the protocol slashes it",
    )
    parser.add_argument("--out", type=Path, required=True, help="the signed commitment file to write (JSON)")


def run(args: argparse.Namespace) -> int:
    signer = account(args)
    if not 0 <= args.slot < args.clients:
        raise InputError(f"--slot must be the client's enrollment index, 0..{args.clients - 1}, got {args.slot}")
    if args.out.exists():
        raise InputError(f"{args.out} already exists; choose another --out or remove it")
    try:
        contract = to_checksum_address(args.contract)
    except ValueError as error:
        raise InputError(f"bad --contract address: {error}") from None
    (update,) = quantized(args, [args.update])
    circuit = round_circuit(args, args.clients, len(update))
    if args.chunk is not None:
        circuit = chunk_circuit(circuit, args.chunk)
    round_, protection = round_for(circuit, len(update), args.srs), SlashingProtection(args.slashing_protection)
    try:
        commitment, signature = sign_update_commitment(
            signer, update, args.slot, round_, args.chain_id, contract, args.task, args.epoch, protection
        )
    finally:
        protection.close()
    write_json_atomic(args.out, signed_record(args.slot, signer.address, commitment, signature))
    print(
        f"client {signer.address} (slot {args.slot}) committed to {args.update} for task {args.task}, epoch "
        f"{args.epoch}: 0x{commitment.commitment.hex()[:16]}...; signed commitment written to {args.out}"
    )
    return 0
