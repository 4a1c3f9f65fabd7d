"""`stakelearn verify`: verify a round folder (`prove`, in one proof or in chunks) or an accuracy
folder (`prove-accuracy`), locally and, if asked, on an EVM.

Every kind of round (prover.rounds) is checked the same way: the local verification (before
anything else, so that no link in the folder is followed before every file is checked), the
signed commitments if the folder holds them, the task's deployed verifier (``--verifier``) or a
verifier deployed for the folder's own circuits (``--evm``, ``--rpc-url``), then the selection and
the VKA digests to compare with the task's verifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.cli.options import read_json, verifying_chain
from stakelearn.pipeline.contracts.round_on_chain import check_with_task_verifier, verify_round_on_chain
from stakelearn.pipeline.contracts.signing import check_signed_records
from stakelearn.pipeline.contracts.verifiers import verify_accuracy_on_chain
from stakelearn.prover.accuracy import is_accuracy_folder, reference_line, verify_accuracy
from stakelearn.prover.round import SIGNED
from stakelearn.prover.rounds import Round, open_round


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
    round_ = open_round(args.folder, ceremony_srs=args.srs)  # no link followed, every shipped file checked
    if args.verifier and not args.rpc_url:
        raise StakeLearnError(
            f"--verifier needs --rpc-url: the node where the task's {round_.verifier_contract} is deployed"
        )
    outcome = round_.verify(args.folder)
    if (args.folder / SIGNED).exists():  # the commitments were checked against the proof
        check_signed_records(read_json(args.folder / SIGNED))
    _verify_on_chain(args, round_)
    left_out = [i for i, bit in enumerate(outcome.mask) if bit == 0 and i not in outcome.absent]
    label = (
        f"chunked round verified ({outcome.chunks} chunk proofs and the combine proof)"
        if outcome.chunks
        else "round verified"
    )
    print(f"{label}: selected {outcome.selected}, left out {left_out}, absent {outcome.absent}")
    print(round_.digests_line())
    return 0


def _verify_on_chain(args: argparse.Namespace, round_: Round) -> None:
    contract = round_.verifier_contract
    if args.verifier:
        check = check_with_task_verifier(Chain.rpc(args.rpc_url), args.verifier, args.folder, args.srs)
        staged = f"its {check.staged} chunk proofs through stageChunks, " if check.staged else ""
        print(
            f"the task's {contract} at {args.verifier} accepts the round ({staged}the submitted proof through "
            f"{check.submitted_by}; selection {check.selected_mask:b}): the round was proven with the task's circuits"
        )
    elif args.evm or args.rpc_url:
        chain = verifying_chain(args)
        result = verify_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        if not result.ok:
            raise StakeLearnError(f"EVM verification on {chain.name} failed: {result.reason}")
        staged = (
            f"{sum(result.stage_gas):,} gas staging the chunks in {len(result.stage_gas)} transactions, "
            if result.stage_gas
            else ""
        )
        print(
            f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the round: "
            f"{staged}{result.gas_used:,} gas verifying the proof"
        )


def _verify_accuracy(args: argparse.Namespace) -> int:
    if args.evm or args.rpc_url:
        chain = verifying_chain(args)
        gas = verify_accuracy_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(f"AccuracyVerifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {gas} gas")
    outcome = verify_accuracy(args.folder, ceremony_srs=args.srs)
    print(
        f"accuracy verified: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f}) on the "
        f"evaluation set whose commitments' hash is 0x{outcome.evaluation_hash.hex()} (the hash the requester's "
        "commitment covers)"
    )
    if outcome.range_error:  # a proof that the set is unprovable: it pays the clients in full
        print(f"the evaluation set has {outcome.range_error} values out of range: the count does not apply")
    if outcome.float_correct is not None:  # an ONNX model's: the quantisation gap beside the proven count
        print(reference_line(outcome))
    return 0
