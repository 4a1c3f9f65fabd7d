"""`stakelearn demo`: the main job, a federated task end to end, proven and settled on an EVM."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stakelearn.errors import StakeLearnError
from stakelearn.pipeline.apps.demo import run_demo
from stakelearn.pipeline.apps.report import report_text
from stakelearn.pipeline.chain.gateway import Chain
from stakelearn.pipeline.cli.options import account, add_aggregation_option, add_key_options, add_verification_option
from stakelearn.pipeline.federation.attacks import ATTACKS
from stakelearn.pipeline.federation.task import MLP_ACCURACY_BATCH, MLP_CHUNK, MODELS, TaskConfig, model_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_task_arguments(parser)
    _add_proof_arguments(parser)
    _add_run_arguments(parser)


def _add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """Who takes part, who attacks, how the data is split, what the requester wants."""
    parser.add_argument("--clients", type=int, default=8, help="clients n (default 8)")
    parser.add_argument(
        "--byzantine", type=int, default=2, help="attackers Krum tolerates, f (needs n > 2f+2; default 2)"
    )
    parser.add_argument("--attackers", type=int, default=2, help="clients that attack, 0..f (default 2)")
    parser.add_argument(
        "--select",
        type=int,
        default=None,
        help="updates Multi-Krum averages, m (default n - f; a round may leave min(f, n - m - f, n - 2f - 3) "
        "clients absent)",
    )
    add_aggregation_option(parser)
    add_verification_option(parser)
    parser.add_argument("--attack", default="sign_flip", help=f"the attack: {', '.join(ATTACKS)} (default sign_flip)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    parser.add_argument("--split", default="iid", help="data split among clients: iid or dirichlet (default iid)")
    parser.add_argument(
        "--alpha", type=float, default=0.5, help="Dirichlet concentration of the non-IID split (default 0.5)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data split, the initial model, local training and the attacks (default 0)",
    )
    parser.add_argument(
        "--evaluation-samples",
        type=int,
        default=64,
        help="size of the requester's private evaluation set the final accuracy is proven on (default 64)",
    )
    parser.add_argument(
        "--target-accuracy",
        type=float,
        default=0.85,
        help="the requester's desired accuracy; below it the clients get only the work share (default 0.85)",
    )


def _add_proof_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and how its rounds and accuracy are proven."""
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="softmax",
        help="softmax: softmax regression, 650 parameters (default); mlp: 64 -> 128 -> 10 with a ReLU, 9,610 "
        f"parameters, proven in chunks (default {MLP_CHUNK}) with its accuracy {MLP_ACCURACY_BATCH} samples per proof",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="prove each round in chunks of C coordinates, as large models need (the chunk proofs staged on "
        "chain before the round; the final accuracy proven over the model's chunks); default: one proof "
        f"for softmax, {MLP_CHUNK} for mlp",
    )
    parser.add_argument(
        "--accuracy-batch",
        type=int,
        default=None,
        help="prove the final accuracy this many samples per proof (must divide --evaluation-samples); "
        f"default: all at once for softmax, {MLP_ACCURACY_BATCH} for mlp",
    )
    parser.add_argument("--inner-cols", type=int, default=8, help="ezkl cells per row")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the run happens, where it is written, and what it prints."""
    parser.add_argument(
        "--rpc-url",
        default=None,
        help="EVM JSON-RPC node (default: the embedded py-evm chain); a finished run sweeps what is left in the "
        "demo's keys back to the funding key",
    )
    parser.add_argument(
        "--allow-demo-keys-on",
        type=int,
        default=None,
        metavar="CHAIN_ID",
        help="fund the demo's throwaway keys (written to run.json in plain text) on this chain too: without it, a "
        "chain other than a local development chain (anvil's 31337, the embedded chain) is refused",
    )
    add_key_options(
        parser,
        default_env=None,
        whose="the funded key that deploys and funds the demo's actors on a node without unlocked accounts",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new run folder (an existing non-empty one is refused; default: a new demo-output/<date-time>/), "
        "or the run to --resume",
    )
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out (needs --rpc-url)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="deploy, post the task, stake and enroll the clients, write run.json in --out, and stop: "
        "the rounds then run elsewhere (examples/flower-digits)",
    )
    parser.add_argument(
        "--commit-window",
        type=int,
        default=None,
        help="seconds of each epoch's commit window, after which a round may leave absent clients out (default a day)",
    )


def task_config(args: argparse.Namespace) -> TaskConfig:
    return TaskConfig(
        clients=args.clients,
        byzantine=args.byzantine,
        attackers=args.attackers,
        attack=args.attack,
        epochs=args.epochs,
        split=args.split,
        alpha=args.alpha,
        select=args.select,
        aggregation=args.aggregation,
        verification=args.verification,
        seed=args.seed,
        evaluation_samples=args.evaluation_samples,
        target_accuracy=args.target_accuracy,
        **model_options(args.model, args.chunk, args.accuracy_batch),
    )


def run(args: argparse.Namespace) -> int:
    config = task_config(args)
    if args.out is None:
        if args.resume:
            raise StakeLearnError("--resume needs --out: the run folder to continue")
        # Each new run gets a folder of its own: nothing earlier is overwritten or deleted.
        args.out = Path("demo-output") / time.strftime("%Y%m%d-%H%M%S")
    # On a node without unlocked accounts (a public network), a funded key pays for the deployment.
    chain = None
    if args.rpc_url:
        payer = account(args) if args.private_key_env or args.keystore else None
        chain = Chain.rpc(args.rpc_url, payer)
    summary = run_demo(
        config,
        args.out,
        rpc_url=args.rpc_url,
        resume=args.resume,
        inner_cols=args.inner_cols,
        chain=chain,
        setup_only=args.setup_only,
        commit_window=args.commit_window,
        allow_demo_keys_on=args.allow_demo_keys_on,
    )
    if args.setup_only:
        print(json.dumps({"run": str(args.out / "run.json"), "task_id": summary["task_id"], **summary["addresses"]}))
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report_text(summary), end="")
        print(f"report, plots and summary.json written to {args.out / 'report'}")
        if args.rpc_url:  # the embedded chain ends with this process; a node's can be explored
            print(f"explore it in the browser: stakelearn explorer --rpc-url {args.rpc_url} --run {args.out}")
    outcome = summary["outcome"]
    # exit 1 if an honest client was harmed: flagged (its epoch unpaid) or slashed
    honest_slashed = [c for c in outcome["slashed"] if c not in outcome["attackers"]]
    return 0 if not outcome["honest_flagged"] and not honest_slashed else 1
