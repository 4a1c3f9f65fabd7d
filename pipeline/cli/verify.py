"""`stakelearn verify`: verify a round folder (`prove`, in one proof or in chunks) or an accuracy
folder (`prove-accuracy`), locally and, if asked, on an EVM.

A round in one proof and a chunked round are checked the same way: the local verification, the
signed commitments if the folder holds them, the task's deployed verifier (``--verifier``) or a
verifier deployed for the folder's own circuits (``--evm``, ``--rpc-url``), then the selection and
the VKA digests to compare with the task's verifier. Only the order differs: a chunked folder is
verified locally first, so that no link in it is followed before every file is checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.cli.options import read_json, verifying_chain
from stakelearn.pipeline.contracts.chunked import check_with_task_chunked_verifier, verify_chunked_round_on_chain
from stakelearn.pipeline.contracts.signing import check_signed_records
from stakelearn.pipeline.contracts.verifiers import (
    verify_accuracy_on_chain,
    verify_round_on_chain,
    verify_with_task_verifier,
)
from stakelearn.prover.accuracy import is_accuracy_folder, verify_accuracy
from stakelearn.prover.chunked_round import is_chunked_round, verify_chunked_round
from stakelearn.prover.round import MANIFEST, SIGNED, verify_round


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", type=Path, metavar="DIR", help="a folder written by `prove` (round) or `prove-accuracy` (accuracy)"
    )
    parser.add_argument(
        "--evm", action="store_true", help="also verify with the generated Solidity verifier on the embedded EVM"
    )
    parser.add_argument("--rpc-url", default=None, help="verify on this EVM JSON-RPC node instead of the embedded one")
    parser.add_argument("--srs", type=Path, default=None, help="the ceremony SRS file the round was proven with")
    parser.add_argument(
        "--verifier",
        default=None,
        metavar="ADDRESS",
        help="with --rpc-url: check the round with this deployed RoundVerifier, or ChunkedRoundVerifier for a "
        "chunked round (the task's, which pins its circuits), by eth_calls only, instead of deploying one for the "
        "folder's own circuits",
    )


def run(args: argparse.Namespace) -> int:
    if is_accuracy_folder(args.folder):
        return _verify_accuracy(args)
    chunked = is_chunked_round(args.folder)
    if args.verifier and not args.rpc_url:
        contract = "ChunkedRoundVerifier" if chunked else "RoundVerifier"
        raise StakeLearnError(f"--verifier needs --rpc-url: the node where the task's {contract} is deployed")
    if chunked:
        # first: no link followed, every file checked before anything reads the folder
        outcome = verify_chunked_round(args.folder, ceremony_srs=args.srs)
        _check_signed(args.folder)
        _verify_chunked_on_chain(args)
        label = f"chunked round verified ({outcome.chunks} chunk proofs and the combine proof)"
    else:
        _verify_round_on_chain(args)
        outcome = verify_round(args.folder, ceremony_srs=args.srs)
        _check_signed(args.folder)  # the commitments were checked against the proof
        label = "round verified"
    left_out = [i for i, bit in enumerate(outcome.mask) if bit == 0 and i not in outcome.absent]
    print(f"{label}: selected {outcome.selected}, left out {left_out}, absent {outcome.absent}")
    print(_digests_line(read_json(args.folder / MANIFEST), chunked))
    return 0


def _check_signed(folder: Path) -> None:
    if (folder / SIGNED).exists():
        check_signed_records(read_json(folder / SIGNED))


def _digests_line(manifest: dict, chunked: bool) -> str:
    """The round's VKA digests, and where to compare them: the task's verifier pins its circuits by them."""
    if chunked:
        return (
            f"chunk circuit VKA digest {manifest['chunk_circuit']['vka_digest']}, combine circuit VKA digest "
            f"{manifest['combine_circuit']['vka_digest']}: compare them with the task's ChunkedRoundVerifier "
            "(chunkVkaDigest, vkaDigest), or check with --rpc-url URL --verifier ADDR"
        )
    return (
        f"circuit VKA digest {manifest['vka_digest']}: "
        "compare it with the task's RoundVerifier (vkaDigest) to know the circuit is the task's"
    )


def _verify_round_on_chain(args: argparse.Namespace) -> None:
    if args.verifier:
        mask = verify_with_task_verifier(Chain.rpc(args.rpc_url), args.verifier, args.folder)
        print(
            f"the task's RoundVerifier at {args.verifier} accepts the round (selection {mask:b}): "
            "the round was proven with the task's circuit"
        )
    elif args.evm or args.rpc_url:
        chain = verifying_chain(args)
        result = verify_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        if not result.ok:
            raise StakeLearnError(f"EVM verification on {chain.name} failed: {result.reason}")
        print(f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {result.gas_used} gas")


def _verify_chunked_on_chain(args: argparse.Namespace) -> None:
    if args.verifier:
        check = check_with_task_chunked_verifier(Chain.rpc(args.rpc_url), args.verifier, args.folder, args.srs)
        print(
            f"the task's ChunkedRoundVerifier at {args.verifier} accepts the round (its {check.chunks} chunk proofs "
            f"through stageChunks, the combine proof through {check.combine_by}; selection {check.selected_mask:b}): "
            "the round was proven with the task's circuits"
        )
    elif args.evm or args.rpc_url:
        chain = verifying_chain(args)
        result = verify_chunked_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(
            f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the round: "
            f"{sum(result.stage_gas):,} gas staging the chunks in {len(result.stage_gas)} transactions, "
            f"{result.combine_gas:,} gas for the combine proof"
        )


def _verify_accuracy(args: argparse.Namespace) -> int:
    if args.evm or args.rpc_url:
        chain = verifying_chain(args)
        gas = verify_accuracy_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(f"AccuracyVerifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {gas} gas")
    outcome = verify_accuracy(args.folder, ceremony_srs=args.srs)
    print(
        f"accuracy verified: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f}) on the "
        f"evaluation set whose hash is 0x{outcome.evaluation_hash.hex()} (the hash the requester's commitment covers)"
    )
    return 0
