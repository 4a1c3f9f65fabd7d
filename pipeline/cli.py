"""The ``stakelearn`` command: it only registers commands; the work is in the packages.

Every user-facing error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stakelearn.errors import StakeLearnError

# Kept here rather than imported: `stakelearn --help` should not load torch.
ATTACK_NAMES = ("sign_flip", "noise", "label_flip", "free_rider", "alie", "ipm")


def _prove(args: argparse.Namespace) -> int:
    import numpy as np

    from stakelearn.models.quantize import FixedPoint, quantize
    from stakelearn.models.update_io import load_updates
    from stakelearn.prover.circuit import RoundCircuit
    from stakelearn.prover.round import SUMMARY, prove_round

    fixed_point = FixedPoint(scale_bits=args.scale_bits, clip=args.clip)
    floats = load_updates(args.updates)
    quantized = np.stack([quantize(row, fixed_point) for row in floats])
    n = len(args.updates)
    circuit = RoundCircuit(
        n=n,
        f=args.byzantine,
        m=args.select if args.select is not None else n - args.byzantine,
        d=quantized.shape[1],
        max_int=fixed_point.max_int,
        num_inner_cols=args.inner_cols,
    )
    prove_round(quantized, circuit, args.out, ceremony_srs=args.srs, sources=[str(p) for p in args.updates])
    print((args.out / SUMMARY).read_text(), end="")
    print(f"round proof written to {args.out}")
    return 0


def _prove_accuracy(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.demo import prove_run_accuracy
    from stakelearn.prover.accuracy import SUMMARY

    prove_run_accuracy(args.run_dir, args.evaluation, args.out)
    print((args.out / SUMMARY).read_text(), end="")
    print(f"accuracy proof written to {args.out}")
    return 0


def _verify_accuracy(args: argparse.Namespace) -> int:
    from stakelearn.prover.accuracy import verify_accuracy

    if args.evm or args.rpc_url:
        from stakelearn.pipeline.chain import Chain
        from stakelearn.pipeline.evm_verify import verify_accuracy_on_chain

        chain = Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()
        gas = verify_accuracy_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(f"AccuracyVerifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {gas} gas")
    outcome = verify_accuracy(args.folder, ceremony_srs=args.srs)
    print(f"accuracy verified: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from stakelearn.prover.accuracy import is_accuracy_folder
    from stakelearn.prover.round import verify_round

    if is_accuracy_folder(args.folder):
        return _verify_accuracy(args)

    if args.evm or args.rpc_url:
        from stakelearn.pipeline.chain import Chain
        from stakelearn.pipeline.evm_verify import verify_round_on_chain

        chain = Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()
        result = verify_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        if not result.ok:
            raise StakeLearnError(f"EVM verification on {chain.name} failed: {result.reason}")
        print(f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {result.gas_used} gas")
    outcome = verify_round(args.folder, ceremony_srs=args.srs)
    print(f"round verified: selected {outcome.selected}, flagged "
          f"{[i for i, bit in enumerate(outcome.mask) if bit == 0]}")
    return 0


def _chain(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.anvil import start_anvil

    node = start_anvil(port=args.port, quiet=False)
    print(f"anvil listening on {node.url} (pid {node.process.pid}); Ctrl-C stops it", flush=True)
    try:
        node.process.wait()
    except KeyboardInterrupt:
        node.stop()
    return 0


def _bench(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.bench import run_bench

    rows = run_bench(profile="quick" if args.quick else args.profile, out=args.out, limit_s=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(row["status"] == "ok" for row in rows) or not args.quick else 1


def _gas(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.gas import run_gas

    run_gas(args.out, tuple(args.clients))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.demo import run_demo
    from stakelearn.pipeline.federation import TaskConfig
    from stakelearn.pipeline.report import report_text

    config = TaskConfig(
        clients=args.clients, byzantine=args.byzantine, attackers=args.attackers, attack=args.attack,
        epochs=args.epochs, split=args.split, alpha=args.alpha, seed=args.seed,
        evaluation_samples=args.evaluation_samples, target_accuracy=args.target_accuracy,
    )
    summary = run_demo(config, args.out, rpc_url=args.rpc_url, resume=args.resume, inner_cols=args.inner_cols)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report_text(summary), end="")
        print(f"report, plots and summary.json written to {args.out / 'report'}")
    outcome = summary["outcome"]
    return 0 if not outcome["honest_slashed"] else 1


def _robustness(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.robustness import run_robustness

    rows = run_robustness(out=args.out, clients=args.clients, byzantine=tuple(args.byzantine), epochs=args.epochs,
                          seed=args.seed, alpha=args.alpha)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.audit import run_audit

    problems = run_audit(args.rpc_url, args.task, contract=args.contract, run_dir=args.run_dir)
    return 0 if not problems else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stakelearn", description="Trustless federated learning with proven Krum.")
    commands = parser.add_subparsers(dest="command", required=True)

    prove = commands.add_parser("prove", help="prove one Multi-Krum round over client updates")
    prove.add_argument("updates", nargs="+", type=Path, metavar="UPDATE", help="a client's exported .onnx model or .npy vector")
    prove.add_argument("--byzantine", "-f", type=int, required=True, help="tolerated Byzantine clients f (needs n > 2f+2)")
    prove.add_argument("--select", "-m", type=int, default=None, help="clients Multi-Krum keeps, 1..n-f (default n-f)")
    prove.add_argument("--out", type=Path, required=True, help="new folder for the proof, commitments and summary")
    prove.add_argument("--scale-bits", type=int, default=7, help="fixed-point resolution 2^-S (default 7)")
    prove.add_argument("--clip", type=float, default=1.0, help="update values are clipped to +-CLIP (default 1.0)")
    prove.add_argument("--inner-cols", type=int, default=8, help="ezkl cells per row; more: fewer rows, more columns")
    prove.add_argument("--srs", type=Path, default=None, help="ceremony SRS file (default: INSECURE local SRS)")
    prove.set_defaults(run=_prove)

    prove_accuracy = commands.add_parser(
        "prove-accuracy", help="prove how many samples of an evaluation set a run's final model gets right")
    prove_accuracy.add_argument("--run", dest="run_dir", type=Path, required=True, help="the aggregator's run folder (demo --out)")
    prove_accuracy.add_argument("--evaluation", type=Path, default=None,
                                help="evaluation set .npz with 'pixels' (N x 64 grey levels 0..16) and 'labels' "
                                     "(default: the requester's set in the run folder)")
    prove_accuracy.add_argument("--out", type=Path, required=True, help="new folder for the proof")
    prove_accuracy.set_defaults(run=_prove_accuracy)

    verify = commands.add_parser("verify", help="verify a round folder (`prove`) or an accuracy folder (`prove-accuracy`)")
    verify.add_argument("folder", type=Path, metavar="DIR")
    verify.add_argument("--evm", action="store_true", help="also verify with the generated Solidity verifier on the embedded EVM")
    verify.add_argument("--rpc-url", default=None, help="verify on this EVM JSON-RPC node instead of the embedded one")
    verify.add_argument("--srs", type=Path, default=None, help="the ceremony SRS file the round was proven with")
    verify.set_defaults(run=_verify)

    demo = commands.add_parser("demo", help="the main job: a federated task end to end, proven and settled on an EVM")
    demo.add_argument("--clients", type=int, default=8, help="clients n (default 8)")
    demo.add_argument("--byzantine", type=int, default=2, help="attackers Krum tolerates, f (needs n > 2f+2; default 2)")
    demo.add_argument("--attackers", type=int, default=2, help="clients that attack, 0..f (default 2)")
    demo.add_argument("--attack", default="sign_flip", help=f"the attack: {', '.join(ATTACK_NAMES)} (default sign_flip)")
    demo.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    demo.add_argument("--split", default="iid", help="data split among clients: iid or dirichlet (default iid)")
    demo.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the non-IID split (default 0.5)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--evaluation-samples", type=int, default=64,
                      help="size of the requester's private evaluation set the final accuracy is proven on (default 64)")
    demo.add_argument("--target-accuracy", type=float, default=0.85,
                      help="the requester's desired accuracy; below it the clients get only the work share (default 0.85)")
    demo.add_argument("--inner-cols", type=int, default=8, help="ezkl cells per row")
    demo.add_argument("--rpc-url", default=None, help="EVM JSON-RPC node (default: the embedded py-evm chain)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="run folder (replaced unless --resume)")
    demo.add_argument("--resume", action="store_true", help="continue the unfinished run in --out (needs --rpc-url)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    demo.set_defaults(run=_demo)

    audit = commands.add_parser("audit", help="rebuild a task's MPS history from chain events and re-check it")
    audit.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    audit.add_argument("--task", type=int, required=True, help="the task id")
    audit.add_argument("--contract", default=None, help="the protocol contract (default: the one in --run's run.json)")
    audit.add_argument("--run", dest="run_dir", type=Path, default=None,
                       help="an aggregator's run folder: also check its store, updates and models against the chain")
    audit.set_defaults(run=_audit)

    robustness = commands.add_parser("robustness", help="the attack grid on the numpy reference: accuracy, false and missed slashes")
    robustness.add_argument("--clients", type=int, default=16, help="clients n, >= 16 (default 16)")
    robustness.add_argument("--byzantine", type=int, nargs="+", default=[3, 6], help="f values; attackers = f (default 3 6)")
    robustness.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    robustness.add_argument("--seed", type=int, default=0)
    robustness.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of the non-IID split")
    robustness.add_argument("--out", type=Path, default=Path("robustness-results"), help="folder for robustness.json/.md/.png")
    robustness.add_argument("--json", action="store_true", help="also print the rows as JSON")
    robustness.set_defaults(run=_robustness)

    chain = commands.add_parser("chain", help="run a local anvil node on 127.0.0.1")
    chain.add_argument("--port", type=int, default=8545)
    chain.set_defaults(run=_chain)

    bench = commands.add_parser("bench", help="measure rows, time, memory and gas of the round circuit against a naive baseline")
    bench.add_argument("--profile", choices=["quick", "standard", "accuracy", "full"], default="standard",
                       help="quick: tiny points; standard: (8,256), (16,1024) and the accuracy proof; "
                            "accuracy: the accuracy proof for 64, 100, 360 samples; full: n 4..32 x d 64..4096")
    bench.add_argument("--quick", action="store_true", help="same as --profile quick (a minute or two)")
    bench.add_argument("--limit", type=float, default=None, help="seconds per point before it is recorded as over the limit")
    bench.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for results.jsonl/.json/.md/.png")
    bench.add_argument("--json", action="store_true", help="also print the results as JSON")
    bench.set_defaults(run=_bench)

    gas = commands.add_parser("gas", help="gas of every protocol function and of one full epoch")
    gas.add_argument("--clients", type=int, nargs="+", default=[8, 16], help="n values to measure (default 8 16)")
    gas.add_argument("--out", type=Path, default=Path("bench-results"), help="folder for gas.json and gas.md")
    gas.set_defaults(run=_gas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except StakeLearnError as error:
        print(f"stakelearn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stakelearn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
