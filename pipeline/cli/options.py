"""The options and helpers several commands share, each defined once.

The ``add_*`` functions add a group of options to a command's parser; the other helpers turn
parsed options into the library's objects. The helpers import the heavier libraries (web3,
ezkl, onnx) when called, so that each command loads only those it uses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stakelearn.circuits.krum import MULTIKRUM, RULES
from stakelearn.errors import InputError
from stakelearn.models.quantize import FixedPoint, quantize
from stakelearn.pipeline.contracts.types import VERIFICATIONS


def add_aggregation_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--aggregation",
        choices=RULES,
        default=MULTIKRUM,
        help="the round's rule, fixed on chain when the task is created: Multi-Krum, or nearest-neighbour "
        "mixing then Multi-Krum (robust on non-IID data; one proof per round) (default multikrum)",
    )


def add_verification_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--verification",
        choices=VERIFICATIONS,
        default="eager",
        help="how the task's rounds are checked on chain, fixed when it is created: eager (every round's "
        "proofs verified when submitted) or optimistic (a round is claimed with a bond and proven only "
        "if someone challenges it within its window: gas per epoch does not grow with the model) "
        "(default eager)",
    )


def add_circuit_options(command: argparse.ArgumentParser) -> None:
    """The round circuit's options, which the clients' `commit` and the aggregator's `prove` share."""
    command.add_argument(
        "--byzantine", "-f", type=int, required=True, help="tolerated Byzantine clients f (needs n > 2f+2)"
    )
    command.add_argument(
        "--select", "-m", type=int, default=None, help="clients Multi-Krum keeps, 1..n-f (default n-f)"
    )
    add_aggregation_option(command)
    command.add_argument("--scale-bits", type=int, default=7, help="fixed-point resolution 2^-S (default 7)")
    command.add_argument("--clip", type=float, default=1.0, help="update values are clipped to +-CLIP (default 1.0)")
    command.add_argument("--inner-cols", type=int, default=8, help="ezkl cells per row; more: fewer rows, more columns")
    command.add_argument(
        "--srs",
        type=Path,
        default=None,
        help="ceremony SRS file, the task's: clients and aggregator must use the same one "
        "(default: this machine's INSECURE local SRS)",
    )
    command.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="the task's chunk size C: the round is proven in chunks of C coordinates and each client "
        "signs the Merkle root of its chunk commitments (default: one proof; `prove` picks C from --prover-memory)",
    )


def add_key_options(
    command: argparse.ArgumentParser, default_env: str | None = "STAKELEARN_KEY", whose: str = "your signing key"
) -> None:
    """Where the signing key comes from: never the command line, where others can read it."""
    default = f" (default {default_env})" if default_env else ""
    command.add_argument(
        "--private-key-env", default=default_env, metavar="VAR", help=f"environment variable holding {whose}{default}"
    )
    command.add_argument(
        "--keystore",
        type=Path,
        default=None,
        help=f"an encrypted JSON keystore file holding {whose}, instead of --private-key-env",
    )
    command.add_argument(
        "--password-env",
        default="STAKELEARN_KEYSTORE_PASSWORD",
        metavar="VAR",
        help="environment variable holding the keystore's password (default STAKELEARN_KEYSTORE_PASSWORD)",
    )


def add_chain_options(command: argparse.ArgumentParser) -> None:
    """The protocol's node and address, and the key that sends the transactions."""
    command.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    command.add_argument("--contract", required=True, help="the protocol contract's address")
    add_key_options(command)


def account(args: argparse.Namespace):
    """The signing key the key options name (``add_key_options``)."""
    from stakelearn.pipeline.chain.accounts import load_account

    return load_account(args.private_key_env, args.keystore, args.password_env)


def protocol(args: argparse.Namespace):
    """The protocol at ``--contract`` on the node at ``--rpc-url`` (``add_chain_options``)."""
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.protocol import attach_protocol

    return attach_protocol(Chain.rpc(args.rpc_url), {"protocol": args.contract})


def verifying_chain(args: argparse.Namespace):
    """The node at ``--rpc-url``, or else the embedded EVM, to verify a proof on."""
    from stakelearn.pipeline.chain.gateway import Chain

    return Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()


def quantized(args: argparse.Namespace, paths: list[Path]):
    """The updates at ``paths`` at the fixed point of the circuit options, one row each."""
    from stakelearn.models.update_io import load_updates

    fixed_point = FixedPoint(scale_bits=args.scale_bits, clip=args.clip)
    floats = load_updates(paths, fixed_point)  # also checks layouts, warns of clipped values
    return np.stack([quantize(row, fixed_point) for row in floats])


def round_circuit(args: argparse.Namespace, n: int, d: int):
    """The round circuit ``prove`` and ``commit`` agree on, from their shared options."""
    from stakelearn.prover.circuit import RoundCircuit

    fixed_point = FixedPoint(scale_bits=args.scale_bits, clip=args.clip)
    m = args.select if args.select is not None else n - args.byzantine
    return RoundCircuit(
        n=n,
        f=args.byzantine,
        m=m,
        d=d,
        max_int=fixed_point.max_int,
        num_inner_cols=args.inner_cols,
        rule=args.aggregation,
    )


def chunk_circuit(circuit, chunk: int):
    """The chunk circuit of ``circuit``'s round in chunks of ``chunk`` coordinates."""
    from stakelearn.prover.chunked import ChunkCircuit

    c = circuit
    return ChunkCircuit(c.n, c.f, c.m, chunk, c.max_int, c.num_inner_cols)


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error})") from None
