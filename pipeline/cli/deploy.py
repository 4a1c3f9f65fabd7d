"""`stakelearn deploy`: the operator's commands. Without ``--approve``, deploy the protocol once
per chain (the reusable ezkl verifier, the staking registry and the protocol; the signing key
becomes the protocol's governance) and write the deployment file. With ``--approve TASK_DIR``,
governance's step for a task shape: deploy the verifier pair for the circuits a prepared task
folder describes and approve it, so that `stakelearn task create` can post the task."""

from __future__ import annotations

import argparse
from pathlib import Path

from stakelearn.errors import InputError
from stakelearn.files import write_json_atomic
from stakelearn.pipeline.cli.options import account, add_key_options, read_json
from stakelearn.pipeline.contracts.types import ProtocolConfig

DEPLOYMENT_FORMAT = "stakelearn-deployment/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    add_key_options(parser, whose="the deployer's key, which becomes the protocol's governance")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("deployment.json"),
        help="where to write the deployment (default deployment.json)",
    )
    defaults = ProtocolConfig()
    parser.add_argument(
        "--stake-wei", type=int, default=defaults.stake_wei, help="the stake every client posts (default 1 ether)"
    )
    parser.add_argument(
        "--unbonding-seconds",
        type=int,
        default=defaults.unbonding_seconds,
        help="a stake's unbonding period (default 7 days)",
    )
    parser.add_argument(
        "--base-fee-wei",
        type=int,
        default=defaults.base_fee_wei,
        help="the fee every task pays on creation (default 0.01 ether)",
    )
    parser.add_argument(
        "--approve",
        type=Path,
        metavar="TASK_DIR",
        default=None,
        help="approve the verifier pair for the task shape a folder from `task create --prepare-only` describes, "
        "on the deployment in --deployment (governance's key)",
    )
    parser.add_argument(
        "--deployment", type=Path, default=None, help="with --approve: the deployment file `deploy` wrote"
    )
    parser.add_argument(
        "--srs",
        type=Path,
        default=None,
        help="the task's ceremony SRS file (default: this machine's INSECURE local SRS)",
    )


def run(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.chain.gateway import Chain

    chain = Chain.rpc(args.rpc_url, payer=account(args))
    if args.approve is not None:
        return _approve(chain, args)
    from stakelearn.pipeline.contracts.protocol import deploy_core
    from stakelearn.verifier_contracts.build import load_artifact

    if args.out.exists():
        raise InputError(f"{args.out} exists: a protocol is deployed once per chain; choose another --out")
    config = ProtocolConfig(
        stake_wei=args.stake_wei, unbonding_seconds=args.unbonding_seconds, base_fee_wei=args.base_fee_wei
    )
    protocol = deploy_core(chain, config)
    verifier, _ = chain.deploy(load_artifact("Halo2VerifierReusable"))
    deployment = {
        "format": DEPLOYMENT_FORMAT,
        "chain_id": chain.chain_id,
        "protocol": protocol.tasks.address,
        "registry": protocol.registry.address,
        "verifier": verifier,
        "governance": chain.payer_address,
    }
    write_json_atomic(args.out, deployment)
    print(f"protocol {protocol.tasks.address} deployed on chain id {chain.chain_id} (governance {chain.payer_address})")
    print(f"deployment written to {args.out}")
    return 0


def _approve(chain, args: argparse.Namespace) -> int:
    from stakelearn.pipeline.contracts.protocol import approve_verifier_pair, attach_protocol
    from stakelearn.pipeline.node.task_description import read_task_folder
    from stakelearn.prover.circuit import prepare

    if args.deployment is None:
        raise InputError("--approve needs --deployment, the file `stakelearn deploy` wrote")
    deployment = read_json(args.deployment)
    if deployment.get("format") != DEPLOYMENT_FORMAT or deployment.get("chain_id") != chain.chain_id:
        raise InputError(f"{args.deployment} is not a deployment on chain id {chain.chain_id}")
    task = read_task_folder(args.approve)
    protocol = attach_protocol(chain, {"protocol": deployment["protocol"]})
    governance = protocol.tasks.functions.GOVERNANCE().call()
    if governance != chain.payer_address:
        raise InputError(
            f"only the protocol's governance {governance} approves verifiers; this key is {chain.payer_address}"
        )
    approved = approve_verifier_pair(
        protocol,
        deployment["verifier"],
        task.round(args.srs),
        prepare(task.accuracy_circuit(), args.srs),
        task.description.terms.evaluation_size,
    )
    print(
        f"approved the verifier pair for {args.approve}: round verifier {approved.round_verifier.contract.address}, "
        f"accuracy verifier {approved.accuracy_verifier.address}"
    )
    return 0
