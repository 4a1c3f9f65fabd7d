"""The ``stakelearn`` command: it only registers commands; the work is in the packages.

Every user-facing error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stakelearn.circuits.krum import MULTIKRUM, RULES
from stakelearn.errors import InputError, StakeLearnError

# Kept here rather than imported: `stakelearn --help` should not load torch.
ATTACK_NAMES = ("sign_flip", "noise", "label_flip", "free_rider", "alie", "ipm", "alie_opt", "ipm_opt", "mimic")


def _round_circuit(args: argparse.Namespace, n: int, d: int):
    """The round circuit ``prove`` and ``commit`` agree on, from their shared options."""
    from stakelearn.models.quantize import FixedPoint
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


def _quantized(args: argparse.Namespace, paths: list[Path]):
    import numpy as np

    from stakelearn.models.quantize import FixedPoint, quantize
    from stakelearn.models.update_io import load_updates

    fixed_point = FixedPoint(scale_bits=args.scale_bits, clip=args.clip)
    floats = load_updates(paths, fixed_point)  # also checks layouts, warns of clipped values
    return np.stack([quantize(row, fixed_point) for row in floats])


def _account(args: argparse.Namespace):
    from stakelearn.pipeline.chain.accounts import load_account

    return load_account(args.private_key_env, args.keystore, args.password_env)


def _protocol(args: argparse.Namespace):
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.contracts.protocol import attach_protocol

    return attach_protocol(Chain.rpc(args.rpc_url), {"protocol": args.contract})


def _chunk_circuit(args: argparse.Namespace, circuit, chunk: int):
    from stakelearn.prover.chunked import ChunkCircuit

    c = circuit
    return ChunkCircuit(c.n, c.f, c.m, chunk, c.max_int, c.num_inner_cols)


def _prove(args: argparse.Namespace) -> int:
    from stakelearn.errors import InputError
    from stakelearn.pipeline.contracts.signing import check_signed_records
    from stakelearn.prover.chunked_round import chunk_size_for, prove_chunked_round
    from stakelearn.prover.round import SUMMARY, prove_round

    if args.out.exists():  # before any work
        raise InputError(f"output folder {args.out} already exists; choose another --out or remove it")
    quantized = _quantized(args, args.updates)
    circuit = _round_circuit(args, len(args.updates), quantized.shape[1])
    signed = None
    if args.signed:
        signed = [_read_json(path) for path in args.signed]
        check_signed_records(signed)
    chunk = args.chunk
    if chunk is None:
        c = circuit
        chunk = chunk_size_for(c.n, c.f, c.m, c.d, c.max_int, args.prover_memory, c.num_inner_cols)
    if not 1 <= chunk <= circuit.d:
        raise InputError(f"--chunk must be 1..d={circuit.d}, got {chunk}")
    sources = [str(p) for p in args.updates]
    if chunk == circuit.d and args.ray_address is None:
        prove_round(quantized, circuit, args.out, ceremony_srs=args.srs, sources=sources, signed=signed)
        print((args.out / SUMMARY).read_text(), end="")
        print(f"round proof written to {args.out}")
        return 0
    outcome = prove_chunked_round(
        quantized,
        _chunk_circuit(args, circuit, chunk),
        args.out,
        signed=signed,
        sources=sources,
        ceremony_srs=args.srs,
        ray_address=args.ray_address,
        workers=args.workers,
    )
    print(f"scores: {outcome.scores}\nselected: {outcome.selected}\nabsent: {outcome.absent}")
    print(
        f"round proven in {outcome.chunks} chunks of {chunk} coordinates (clients commit with --chunk {chunk}); "
        f"written to {args.out}"
    )
    return 0


def _commit(args: argparse.Namespace) -> int:
    from eth_utils import to_checksum_address

    from stakelearn.errors import InputError
    from stakelearn.files import write_json_atomic
    from stakelearn.pipeline.contracts.signing import signed_record
    from stakelearn.pipeline.node.client import sign_update_commitment
    from stakelearn.pipeline.node.signer import SlashingProtection
    from stakelearn.prover.circuit import prepare

    account = _account(args)
    if not 0 <= args.slot < args.clients:
        raise InputError(f"--slot must be the client's enrollment index, 0..{args.clients - 1}, got {args.slot}")
    if args.out.exists():
        raise InputError(f"{args.out} already exists; choose another --out or remove it")
    try:
        contract = to_checksum_address(args.contract)
    except ValueError as error:
        raise InputError(f"bad --contract address: {error}") from None
    (update,) = _quantized(args, [args.update])
    circuit = _round_circuit(args, args.clients, len(update))
    if args.chunk is not None:
        circuit = _chunk_circuit(args, circuit, args.chunk)
    prepared, protection = prepare(circuit, args.srs), SlashingProtection(args.slashing_protection)
    try:
        commitment, signature = sign_update_commitment(
            account, update, args.slot, prepared, args.chain_id, contract, args.task, args.epoch, protection
        )
    finally:
        protection.close()
    write_json_atomic(args.out, signed_record(args.slot, account.address, commitment, signature))
    print(
        f"client {account.address} (slot {args.slot}) committed to {args.update} for task {args.task}, epoch "
        f"{args.epoch}: 0x{commitment.commitment.hex()[:16]}...; signed commitment written to {args.out}"
    )
    return 0


def _cache(args: argparse.Namespace) -> int:
    from stakelearn.prover.cache import cache_entries, prune
    from stakelearn.prover.srs import stakelearn_home

    if args.prune:
        freed = prune(srs=args.srs)
        print(
            f"freed {freed / 2**20:,.1f} MB in {stakelearn_home()}" + ("" if args.srs else " (SRS files kept: --srs)")
        )
        return 0
    entries = cache_entries()
    print(f"{stakelearn_home()}: {sum(e.bytes for e in entries) / 2**20:,.1f} MB")
    for entry in entries:
        print(f"  {entry.kind:<8} {entry.bytes / 2**20:>10,.1f} MB  {entry.label:<40} {entry.path}")
    return 0


def _stake(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.client import stake

    account = _account(args)
    sent = stake(_protocol(args), account)
    print(f"{account.address} staked {sent} wei" if sent else f"{account.address} already holds the full stake")
    return 0


ENROLL_CIRCUIT_OPTIONS = ("model", "scale_bits", "clip", "chunk", "accuracy_batch", "inner_cols", "srs")


def _enroll(args: argparse.Namespace) -> int:
    from stakelearn.models.quantize import FixedPoint
    from stakelearn.pipeline.federation.task import TASK_FIXED_POINT
    from stakelearn.pipeline.node.client import TaskCircuitOptions, enroll

    account = _account(args)
    options = None
    if any(getattr(args, name) is not None for name in ENROLL_CIRCUIT_OPTIONS):
        mlp = args.model == "mlp"
        options = TaskCircuitOptions(
            hidden=MLP_HIDDEN if mlp else 0,
            fixed_point=FixedPoint(
                scale_bits=TASK_FIXED_POINT.scale_bits if args.scale_bits is None else args.scale_bits,
                clip=TASK_FIXED_POINT.clip if args.clip is None else args.clip,
            ),
            chunk=args.chunk if args.chunk is not None else MLP_CHUNK if mlp else 0,
            accuracy_batch=args.accuracy_batch if args.accuracy_batch is not None else MLP_ACCURACY_BATCH if mlp else 0,
            inner_cols=8 if args.inner_cols is None else args.inner_cols,
            ceremony_srs=args.srs,
        )
    task = enroll(_protocol(args), account, args.task, options)
    if options is None:
        print(
            f"stakelearn: warning: task {args.task}'s verifiers are a pair governance approved, but their code was not "
            "compared with the protocol's for the task's circuits: give the task's circuit options (--model ...) to compare it",
            file=sys.stderr,
        )
    checked = "approved pair" if options is None else "the protocol's code for the task's circuits"
    print(f"{account.address} enrolled in task {args.task} (n={task.n}; round verifier {task.verifier}, {checked})")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.aggregator import submit_round

    receipt = submit_round(
        _protocol(args), _account(args), args.task, args.epoch, args.folder, args.chunks_per_transaction
    )
    print(
        f"epoch {args.epoch} of task {args.task} submitted: {receipt['gasUsed']:,} gas, "
        f"transaction 0x{bytes(receipt['transactionHash']).hex()}"
    )
    return 0


def _read_json(path: Path):
    from stakelearn.errors import InputError

    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error})") from None


def _prove_accuracy(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.apps.demo import prove_run_accuracy
    from stakelearn.prover.accuracy import SUMMARY

    prove_run_accuracy(args.run_dir, args.evaluation, args.out)
    print((args.out / SUMMARY).read_text(), end="")
    print(f"accuracy proof written to {args.out}")
    return 0


def _verify_accuracy(args: argparse.Namespace) -> int:
    from stakelearn.prover.accuracy import verify_accuracy

    if args.evm or args.rpc_url:
        from stakelearn.pipeline.chain.gateway import Chain
        from stakelearn.pipeline.contracts.verifiers import verify_accuracy_on_chain

        chain = Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()
        gas = verify_accuracy_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(f"AccuracyVerifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {gas} gas")
    outcome = verify_accuracy(args.folder, ceremony_srs=args.srs)
    print(
        f"accuracy verified: {outcome.correct} of {outcome.samples} correct ({outcome.accuracy:.3f}) on the "
        f"evaluation set whose hash is 0x{outcome.evaluation_hash.hex()} (the hash the requester's commitment covers)"
    )
    return 0


def _verify_chunked(args: argparse.Namespace) -> int:
    from stakelearn.prover.chunked_round import MANIFEST, SIGNED, verify_chunked_round

    if args.verifier and not args.rpc_url:
        raise StakeLearnError("--verifier needs --rpc-url: the node where the task's ChunkedRoundVerifier is deployed")
    outcome = verify_chunked_round(args.folder, ceremony_srs=args.srs)  # first: no link followed, every file checked
    if (args.folder / SIGNED).exists():
        from stakelearn.pipeline.contracts.signing import check_signed_records

        check_signed_records(_read_json(args.folder / SIGNED))
    if args.verifier:
        from stakelearn.pipeline.chain.gateway import Chain
        from stakelearn.pipeline.contracts.chunked import check_with_task_chunked_verifier

        check = check_with_task_chunked_verifier(Chain.rpc(args.rpc_url), args.verifier, args.folder, args.srs)
        print(
            f"the task's ChunkedRoundVerifier at {args.verifier} accepts the round (its {check.chunks} chunk proofs "
            f"through stageChunks, the combine proof through {check.combine_by}; selection {check.selected_mask:b}): "
            "the round was proven with the task's circuits"
        )
    elif args.evm or args.rpc_url:
        from stakelearn.pipeline.chain.gateway import Chain
        from stakelearn.pipeline.contracts.chunked import verify_chunked_round_on_chain

        chain = Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()
        result = verify_chunked_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        print(
            f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the round: "
            f"{sum(result.stage_gas):,} gas staging the chunks in {len(result.stage_gas)} transactions, "
            f"{result.combine_gas:,} gas for the combine proof"
        )
    left_out = [i for i, bit in enumerate(outcome.mask) if bit == 0 and i not in outcome.absent]
    print(
        f"chunked round verified ({outcome.chunks} chunk proofs and the combine proof): selected "
        f"{outcome.selected}, left out {left_out}, absent {outcome.absent}"
    )
    manifest = _read_json(args.folder / MANIFEST)
    print(
        f"chunk circuit VKA digest {manifest['chunk_circuit']['vka_digest']}, combine circuit VKA digest "
        f"{manifest['combine_circuit']['vka_digest']}: compare them with the task's ChunkedRoundVerifier "
        "(chunkVkaDigest, vkaDigest), or check with --rpc-url URL --verifier ADDR"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from stakelearn.prover.accuracy import is_accuracy_folder
    from stakelearn.prover.chunked_round import is_chunked_round
    from stakelearn.prover.round import SIGNED, verify_round

    if is_accuracy_folder(args.folder):
        return _verify_accuracy(args)
    if is_chunked_round(args.folder):
        return _verify_chunked(args)

    if args.verifier:
        from stakelearn.pipeline.chain.gateway import Chain
        from stakelearn.pipeline.contracts.verifiers import verify_with_task_verifier

        if not args.rpc_url:
            raise StakeLearnError("--verifier needs --rpc-url: the node where the task's RoundVerifier is deployed")
        mask = verify_with_task_verifier(Chain.rpc(args.rpc_url), args.verifier, args.folder)
        print(
            f"the task's RoundVerifier at {args.verifier} accepts the round (selection {mask:b}): "
            "the round was proven with the task's circuit"
        )
    elif args.evm or args.rpc_url:
        from stakelearn.pipeline.chain.gateway import Chain
        from stakelearn.pipeline.contracts.verifiers import verify_round_on_chain

        chain = Chain.rpc(args.rpc_url) if args.rpc_url else Chain.embedded()
        result = verify_round_on_chain(args.folder, chain, ceremony_srs=args.srs)
        if not result.ok:
            raise StakeLearnError(f"EVM verification on {chain.name} failed: {result.reason}")
        print(f"EVM verifier on {chain.name} (chain id {chain.chain_id}) accepted the proof: {result.gas_used} gas")
    outcome = verify_round(args.folder, ceremony_srs=args.srs)
    if (args.folder / SIGNED).exists():
        from stakelearn.pipeline.contracts.signing import check_signed_records

        check_signed_records(_read_json(args.folder / SIGNED))  # the commitments were checked against the proof
    left_out = [i for i, bit in enumerate(outcome.mask) if bit == 0 and i not in outcome.absent]
    print(f"round verified: selected {outcome.selected}, left out {left_out}, absent {outcome.absent}")
    print(
        f"circuit VKA digest {json.loads((args.folder / 'round.json').read_text())['vka_digest']}: "
        "compare it with the task's RoundVerifier (vkaDigest) to know the circuit is the task's"
    )
    return 0


def _flower(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.flower.local import round_table, run_federation
    from stakelearn.pipeline.node.run_folder import config_from_json, load_run

    config = config_from_json(load_run(args.run_dir)["config"])
    if not (args.app / "pyproject.toml").is_file():
        raise InputError(f"{args.app} is not a Flower app (no pyproject.toml); give the app's folder with --app")
    run_config = {
        "run-dir": str(args.run_dir.resolve()),
        "rpc-url": args.rpc_url,
        "strategy": args.strategy,
        "num-server-rounds": args.rounds or config.epochs,
        "round-timeout": args.round_timeout,
        "ray-address": args.ray_address or "",
    }
    if args.strategy == "proven":  # refused here in one line, not deep in the ServerApp's log
        from stakelearn.pipeline.flower import open_task

        open_task(args.run_dir, args.rpc_url).open_epoch()
    folder = args.run_dir / "flower" / f"{args.engine}-{args.strategy}"
    rounds = args.run_dir / "flower" / f"{args.strategy}.json"
    before = rounds.stat().st_mtime_ns if rounds.exists() else None  # the ServerApp writes it when it finishes
    code = run_federation(
        args.app,
        run_config,
        config.clients,
        folder,
        simulation=args.engine == "simulation",
        client_node=(args.run_dir.resolve(), args.rpc_url),
        signers=args.strategy == "proven",
    )
    if not rounds.exists() or rounds.stat().st_mtime_ns == before:  # flwr run exits 0 even if the ServerApp raised
        raise StakeLearnError(f"the Flower run did not finish (no new {rounds}): its error is above, logs in {folder}")
    if code == 0:
        summary = json.loads(rounds.read_text())
        print(round_table(summary), end="")
        if "accuracy_proof" in summary:
            proof = summary["accuracy_proof"]
            target = "reached" if proof["target_reached"] else "missed"
            print(f"accuracy proven on chain: {proof['correct']} of {proof['samples']} correct; target {target}")
    return code


def _signer(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.node.signer import Signer, serve_signer

    signer = Signer(_protocol(args), _account(args), args.slashing_protection)
    return serve_signer(signer, args.port, say_line=lambda line: print(line, flush=True))


def _chain(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.chain.anvil import serve_anvil

    return serve_anvil(args.port, say=lambda line: print(line, flush=True))


def _int_list(text: str) -> list[int]:
    """A comma-separated list of integers, e.g. ``1000,10000,100000``."""
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


def _shape_list(text: str) -> list[tuple[int, int]]:
    """Comma-separated chunk shapes NxC, e.g. ``16x128,8x1024``."""
    try:
        return [tuple(int(side) for side in part.split("x", 1)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected shapes NxC separated by commas (e.g. 16x128), got {text!r}"
        ) from None


def _bench(args: argparse.Namespace) -> int:
    from stakelearn.errors import InputError
    from stakelearn.pipeline.apps.bench import run_bench
    from stakelearn.pipeline.apps.chunked_bench import DEFAULT_PER_TRANSACTION, DEFAULT_WORKERS, run_chunked_bench

    if args.profile == "chunked":
        per_transaction = DEFAULT_PER_TRANSACTION if args.per_transaction is None else args.per_transaction
        workers = DEFAULT_WORKERS if args.workers is None else args.workers
        if per_transaction < 1 or workers < 1 or any(d < 1 for d in args.d or []):
            raise InputError("--d, --per-transaction and --workers must be >= 1")
        if any(len(shape) != 2 or min(shape) < 1 for shape in args.shapes or []):
            raise InputError("--shapes takes N x C with both >= 1, e.g. 16x128")
        results = run_chunked_bench(
            args.out,
            quick=args.quick,
            d_values=args.d,
            per_transaction=per_transaction,
            workers=workers,
            limit_s=args.limit,
            shapes_wanted=args.shapes,
            chain_kind=args.chain or "embedded",
            work=args.work,
        )
        rows = results["shapes"] + results["points"]
        if args.json:
            print(json.dumps(results, indent=2))
        return 0 if all(row["status"] == "ok" for row in rows) or not args.quick else 1
    if (args.d, args.per_transaction, args.workers, args.shapes, args.chain, args.work) != (None,) * 6:
        raise InputError("--d, --shapes, --per-transaction, --workers, --chain and --work go with --profile chunked")
    rows = run_bench(profile="quick" if args.quick else args.profile, out=args.out, limit_s=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(row["status"] == "ok" for row in rows) or not args.quick else 1


def _gas(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.apps.gas import run_gas

    run_gas(args.out, tuple(args.clients))
    return 0


MLP_HIDDEN = 128  # 64 -> 128 -> 10: 9,610 parameters
MLP_CHUNK = 1024  # 10 chunks; a chunk proof of n=8 fits a 2 GB prover
MLP_ACCURACY_BATCH = 4  # samples per accuracy proof at the chunk circuit's logrows


def model_options(args: argparse.Namespace) -> dict:
    """The task's model and how it is proven: softmax regression in one proof unless --chunk
    says otherwise; the MLP always in chunks, its accuracy a few samples per proof."""
    if args.model == "softmax":
        return {"chunk": args.chunk or 0, "accuracy_batch": args.accuracy_batch or 0}
    return {
        "hidden": MLP_HIDDEN,
        "chunk": args.chunk or MLP_CHUNK,
        "accuracy_batch": args.accuracy_batch or MLP_ACCURACY_BATCH,
    }


def _demo(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.apps.demo import run_demo
    from stakelearn.pipeline.apps.report import report_text
    from stakelearn.pipeline.chain.gateway import Chain
    from stakelearn.pipeline.federation.task import TaskConfig

    config = TaskConfig(
        clients=args.clients,
        byzantine=args.byzantine,
        attackers=args.attackers,
        attack=args.attack,
        epochs=args.epochs,
        split=args.split,
        alpha=args.alpha,
        select=args.select,
        aggregation=args.aggregation,
        seed=args.seed,
        evaluation_samples=args.evaluation_samples,
        target_accuracy=args.target_accuracy,
        **model_options(args),
    )
    if args.out is None:
        if args.resume:
            raise StakeLearnError("--resume needs --out: the run folder to continue")
        # Each new run gets a folder of its own: nothing earlier is overwritten or deleted.
        args.out = Path("demo-output") / time.strftime("%Y%m%d-%H%M%S")
    # On a node without unlocked accounts (a public network), a funded key pays for the deployment.
    chain = None
    if args.rpc_url:
        payer = _account(args) if args.private_key_env or args.keystore else None
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
    outcome = summary["outcome"]
    # exit 1 if an honest client was harmed: flagged (its epoch unpaid) or slashed
    honest_slashed = [c for c in outcome["slashed"] if c not in outcome["attackers"]]
    return 0 if not outcome["honest_flagged"] and not honest_slashed else 1


def _robustness(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.apps.robustness import run_robustness

    analysis = run_robustness(
        out=args.out,
        clients=args.clients,
        byzantine=tuple(args.byzantine),
        epochs=args.epochs,
        choosing_seeds=tuple(args.choosing_seeds),
        judging_seeds=tuple(args.judging_seeds),
        alphas=tuple(args.alphas),
        aggregations=tuple(args.aggregations),
        attacks=tuple(args.attacks),
        workers=args.workers,
    )
    if args.json:
        print(json.dumps({"choice": analysis["choice"], "judgement": analysis["judgement"]}, indent=2))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from stakelearn.pipeline.apps.audit import run_audit

    problems = run_audit(args.rpc_url, args.task, contract=args.contract, run_dir=args.run_dir)
    return 0 if not problems else 1


def _version_text() -> str:
    # Package metadata only: `stakelearn --version` must not import ezkl (or torch).
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"stakelearn {installed('stakelearn')} (ezkl {installed('ezkl')})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stakelearn", description="Trustless federated learning with proven Krum.")
    parser.add_argument(
        "--version", action="version", version=_version_text(), help="print stakelearn's and ezkl's versions and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_aggregation_option(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--aggregation",
            choices=RULES,
            default=MULTIKRUM,
            help="the round's rule, fixed on chain when the task is created: Multi-Krum, or nearest-neighbour "
            "mixing then Multi-Krum (robust on non-IID data; one proof per round) (default multikrum)",
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
        command.add_argument(
            "--clip", type=float, default=1.0, help="update values are clipped to +-CLIP (default 1.0)"
        )
        command.add_argument(
            "--inner-cols", type=int, default=8, help="ezkl cells per row; more: fewer rows, more columns"
        )
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
            "signs the chain of its chunk commitments (default: one proof; `prove` picks C from --prover-memory)",
        )

    def add_key_options(
        command: argparse.ArgumentParser, default_env: str | None = "STAKELEARN_KEY", whose: str = "your signing key"
    ) -> None:
        """Where the signing key comes from: never the command line, where others can read it."""
        default = f" (default {default_env})" if default_env else ""
        command.add_argument(
            "--private-key-env",
            default=default_env,
            metavar="VAR",
            help=f"environment variable holding {whose}{default}",
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

    commit = commands.add_parser(
        "commit", help="a client's step: commit to its update and sign the commitment for a task and epoch"
    )
    commit.add_argument("update", type=Path, metavar="UPDATE", help="the client's exported .onnx model or .npy vector")
    commit.add_argument("--slot", type=int, required=True, help="the client's enrollment index in the task, 0..n-1")
    commit.add_argument("--clients", type=int, required=True, help="the task's number of clients n")
    add_circuit_options(commit)
    commit.add_argument("--task", type=int, required=True, help="the task id")
    commit.add_argument("--epoch", type=int, required=True, help="the epoch (round) this update is for, from 1")
    commit.add_argument("--chain-id", type=int, required=True, help="the chain id of the protocol's chain")
    commit.add_argument("--contract", required=True, help="the protocol contract's address")
    add_key_options(commit)
    commit.add_argument(
        "--slashing-protection",
        type=Path,
        required=True,
        metavar="FILE",
        help="the SQLite file recording every commitment this key signed (created if missing; the signer's "
        "format): a second, different commitment for one task and epoch is refused, as the protocol slashes it",
    )
    commit.add_argument("--out", type=Path, required=True, help="the signed commitment file to write (JSON)")
    commit.set_defaults(run=_commit)

    prove = commands.add_parser("prove", help="prove one Multi-Krum round over client updates")
    prove.add_argument(
        "updates", nargs="+", type=Path, metavar="UPDATE", help="a client's exported .onnx model or .npy vector"
    )
    add_circuit_options(prove)
    prove.add_argument(
        "--signed",
        nargs="+",
        type=Path,
        default=None,
        metavar="SIGNED",
        help="the clients' signed commitments (`stakelearn commit`), one per UPDATE in the same order: "
        "an update that is not the one its client signed is refused",
    )
    prove.add_argument("--out", type=Path, required=True, help="new folder for the proof, commitments and summary")
    prove.add_argument(
        "--prover-memory",
        type=float,
        default=2048,
        metavar="MB",
        help="memory per prover process when --chunk is not given: one proof if the round fits, "
        "else the largest chunk that fits (default 2048)",
    )
    prove.add_argument(
        "--ray-address",
        default=None,
        help="prove the chunks as tasks on this Ray cluster (host:port, or auto) instead of local processes",
    )
    prove.add_argument("--workers", type=int, default=None, help="local prover processes (default: what fits)")
    prove.set_defaults(run=_prove)

    def add_chain_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
        command.add_argument("--contract", required=True, help="the protocol contract's address")
        add_key_options(command)

    stake = commands.add_parser("stake", help="a client's first step: stake STAKE_AMOUNT (or top a slashed stake up)")
    add_chain_options(stake)
    stake.set_defaults(run=_stake)

    enroll = commands.add_parser(
        "enroll",
        help="enroll in a task whose verifiers the protocol approved (and, given the task's circuit options, whose "
        "verifiers' code is the protocol's for those circuits)",
    )
    add_chain_options(enroll)
    enroll.add_argument("--task", type=int, required=True, help="the task id")
    task_circuit = enroll.add_argument_group(
        "the task's circuit options",
        "as `demo` posts a task (n, f, m, the rule and the evaluation set's size come from the task itself): any of "
        "them makes enroll compare the task's verifiers' code with the protocol's for these circuits",
    )
    task_circuit.add_argument(
        "--model", choices=["softmax", "mlp"], default=None, help="the task's model (default softmax)"
    )
    task_circuit.add_argument(
        "--scale-bits", type=int, default=None, help="the task's fixed-point resolution 2^-S (default 9)"
    )
    task_circuit.add_argument("--clip", type=float, default=None, help="the task's clip (default 2.0)")
    task_circuit.add_argument(
        "--chunk",
        type=int,
        default=None,
        help=f"the task's chunk size C (default: one proof for softmax, {MLP_CHUNK} for mlp)",
    )
    task_circuit.add_argument(
        "--accuracy-batch",
        type=int,
        default=None,
        help=f"samples per accuracy proof (default: the whole set for softmax, {MLP_ACCURACY_BATCH} for mlp)",
    )
    task_circuit.add_argument("--inner-cols", type=int, default=None, help="ezkl cells per row (default 8)")
    task_circuit.add_argument(
        "--srs",
        type=Path,
        default=None,
        help="the task's ceremony SRS file (default: this machine's INSECURE local SRS)",
    )
    enroll.set_defaults(run=_enroll)

    submit = commands.add_parser(
        "submit", help="the aggregator's step: submit a proven round folder (with signed commitments)"
    )
    submit.add_argument("folder", type=Path, metavar="DIR", help="a round folder proven with --signed")
    add_chain_options(submit)
    submit.add_argument("--task", type=int, required=True, help="the task id")
    submit.add_argument("--epoch", type=int, required=True, help="the epoch the round is for")
    submit.add_argument(
        "--chunks-per-transaction",
        type=int,
        default=4,
        help="a chunked round's chunk proofs staged per transaction (default 4; fewer if a block's gas limit is low)",
    )
    submit.set_defaults(run=_submit)

    cache = commands.add_parser("cache", help="show the key cache ($STAKELEARN_HOME) or prune it")
    cache.add_argument(
        "--prune", action="store_true", help="delete compiled circuits, their keys and interrupted set-ups"
    )
    cache.add_argument("--srs", action="store_true", help="with --prune: delete the SRS files too")
    cache.set_defaults(run=_cache)

    prove_accuracy = commands.add_parser(
        "prove-accuracy", help="prove how many samples of an evaluation set a run's final model gets right"
    )
    prove_accuracy.add_argument(
        "--run", dest="run_dir", type=Path, required=True, help="the aggregator's run folder (demo --out)"
    )
    prove_accuracy.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="evaluation set .npz with 'pixels' (N x 64 grey levels 0..16) and 'labels' "
        "(default: the requester's set in the run folder)",
    )
    prove_accuracy.add_argument("--out", type=Path, required=True, help="new folder for the proof")
    prove_accuracy.set_defaults(run=_prove_accuracy)

    verify = commands.add_parser(
        "verify", help="verify a round folder (`prove`) or an accuracy folder (`prove-accuracy`)"
    )
    verify.add_argument(
        "folder", type=Path, metavar="DIR", help="a folder written by `prove` (round) or `prove-accuracy` (accuracy)"
    )
    verify.add_argument(
        "--evm", action="store_true", help="also verify with the generated Solidity verifier on the embedded EVM"
    )
    verify.add_argument("--rpc-url", default=None, help="verify on this EVM JSON-RPC node instead of the embedded one")
    verify.add_argument("--srs", type=Path, default=None, help="the ceremony SRS file the round was proven with")
    verify.add_argument(
        "--verifier",
        default=None,
        metavar="ADDRESS",
        help="with --rpc-url: check the round with this deployed RoundVerifier, or ChunkedRoundVerifier for a "
        "chunked round (the task's, which pins its circuits), by eth_calls only, instead of deploying one for the "
        "folder's own circuits",
    )
    verify.set_defaults(run=_verify)

    demo = commands.add_parser("demo", help="the main job: a federated task end to end, proven and settled on an EVM")
    demo.add_argument("--clients", type=int, default=8, help="clients n (default 8)")
    demo.add_argument(
        "--byzantine", type=int, default=2, help="attackers Krum tolerates, f (needs n > 2f+2; default 2)"
    )
    demo.add_argument("--attackers", type=int, default=2, help="clients that attack, 0..f (default 2)")
    demo.add_argument(
        "--select",
        type=int,
        default=None,
        help="updates Multi-Krum averages, m (default n - f; a round may leave min(f, n - m - f, n - 2f - 3) "
        "clients absent)",
    )
    add_aggregation_option(demo)
    demo.add_argument(
        "--attack", default="sign_flip", help=f"the attack: {', '.join(ATTACK_NAMES)} (default sign_flip)"
    )
    demo.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    demo.add_argument("--split", default="iid", help="data split among clients: iid or dirichlet (default iid)")
    demo.add_argument(
        "--alpha", type=float, default=0.5, help="Dirichlet concentration of the non-IID split (default 0.5)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--evaluation-samples",
        type=int,
        default=64,
        help="size of the requester's private evaluation set the final accuracy is proven on (default 64)",
    )
    demo.add_argument(
        "--target-accuracy",
        type=float,
        default=0.85,
        help="the requester's desired accuracy; below it the clients get only the work share (default 0.85)",
    )
    demo.add_argument(
        "--model",
        choices=["softmax", "mlp"],
        default="softmax",
        help="softmax: softmax regression, 650 parameters (default); mlp: 64 -> 128 -> 10 with a ReLU, 9,610 "
        f"parameters, proven in chunks (default {MLP_CHUNK}) with its accuracy {MLP_ACCURACY_BATCH} samples per proof",
    )
    demo.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="prove each round in chunks of C coordinates, as large models need (the chunk proofs staged on "
        "chain before the round; the final accuracy proven over the model's chunks); default: one proof "
        f"for softmax, {MLP_CHUNK} for mlp",
    )
    demo.add_argument(
        "--accuracy-batch",
        type=int,
        default=None,
        help="prove the final accuracy this many samples per proof (must divide --evaluation-samples); "
        f"default: all at once for softmax, {MLP_ACCURACY_BATCH} for mlp",
    )
    demo.add_argument("--inner-cols", type=int, default=8, help="ezkl cells per row")
    demo.add_argument(
        "--rpc-url",
        default=None,
        help="EVM JSON-RPC node (default: the embedded py-evm chain); a finished run sweeps what is left in the "
        "demo's keys back to the funding key",
    )
    demo.add_argument(
        "--allow-demo-keys-on",
        type=int,
        default=None,
        metavar="CHAIN_ID",
        help="fund the demo's throwaway keys (written to run.json in plain text) on this chain too: without it, a "
        "chain other than a local development chain (anvil's 31337, the embedded chain) is refused",
    )
    add_key_options(
        demo,
        default_env=None,
        whose="the funded key that deploys and funds the demo's actors on a node without unlocked accounts",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new run folder (an existing non-empty one is refused; default: a new demo-output/<date-time>/), "
        "or the run to --resume",
    )
    demo.add_argument("--resume", action="store_true", help="continue the unfinished run in --out (needs --rpc-url)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    demo.add_argument(
        "--setup-only",
        action="store_true",
        help="deploy, post the task, stake and enroll the clients, write run.json in --out, and stop: "
        "the rounds then run elsewhere (examples/flower-digits)",
    )
    demo.add_argument(
        "--commit-window",
        type=int,
        default=None,
        help="seconds of each epoch's commit window, after which a round may leave absent clients out (default a day)",
    )
    demo.set_defaults(run=_demo)

    audit = commands.add_parser("audit", help="rebuild a task's MPS history from chain events and re-check it")
    audit.add_argument("--rpc-url", required=True, help="the EVM JSON-RPC node")
    audit.add_argument("--task", type=int, required=True, help="the task id")
    audit.add_argument("--contract", default=None, help="the protocol contract (default: the one in --run's run.json)")
    audit.add_argument(
        "--run",
        dest="run_dir",
        type=Path,
        default=None,
        help="an aggregator's run folder: also check its store, updates and models against the chain",
    )
    audit.set_defaults(run=_audit)

    robustness = commands.add_parser(
        "robustness",
        help="the attack grid on the numpy reference: accuracy, flags, and the flag ratio chosen on some seeds and "
        "judged on others",
    )
    robustness.add_argument("--clients", type=int, default=16, help="clients n, >= 16 (default 16)")
    robustness.add_argument(
        "--byzantine",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4, 5, 6],
        help="f values; attackers = f (default 0 1 2 3 4 5 6: every f that n = 16 allows, n > 2f + 2)",
    )
    robustness.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    robustness.add_argument(
        "--choosing-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds the flag ratio is chosen on (default 0 1 2 3 4)",
    )
    robustness.add_argument(
        "--judging-seeds",
        type=int,
        nargs="+",
        default=[5, 6, 7, 8, 9],
        help="seeds the chosen ratio is judged on, none of the choosing ones (default 5 6 7 8 9)",
    )
    robustness.add_argument(
        "--alphas",
        type=float,
        nargs="*",
        default=[0.1, 0.5, 1.0],
        help="Dirichlet concentrations of the non-IID splits, beside IID (default 0.1 0.5 1.0; none: IID only)",
    )
    robustness.add_argument(
        "--aggregations",
        nargs="+",
        choices=RULES,
        default=list(RULES),
        help="aggregation rules (default both: multikrum nnm-multikrum)",
    )
    robustness.add_argument(
        "--attacks",
        nargs="+",
        default=list(ATTACK_NAMES),
        help=f"attacks (default all: {' '.join(ATTACK_NAMES)})",
    )
    robustness.add_argument(
        "--workers", type=int, default=2, help="processes running the grid, one torch thread each (default 2)"
    )
    robustness.add_argument(
        "--out", type=Path, default=Path("robustness-results"), help="folder for robustness.json/.md/.png"
    )
    robustness.add_argument("--json", action="store_true", help="also print the choice and the judgement as JSON")
    robustness.set_defaults(run=_robustness)

    flower = commands.add_parser(
        "flower",
        help="run a posted task's rounds as a Flower app on this machine (SuperLink and SuperNodes on 127.0.0.1)",
    )
    flower.add_argument("--run-dir", type=Path, required=True, help="the task's folder (demo --setup-only --out DIR)")
    flower.add_argument("--rpc-url", required=True, help="a node of the task's chain")
    flower.add_argument(
        "--engine",
        choices=["simulation", "deployment"],
        default="simulation",
        help="Flower's simulation engine, or the deployment engine with one SuperNode process per client",
    )
    flower.add_argument(
        "--strategy",
        choices=["proven", "multikrum"],
        default="proven",
        help="proven: ProvenMultiKrum (default); multikrum: Flower's own MultiKrum, nothing proven, to compare",
    )
    flower.add_argument("--rounds", type=int, default=None, help="server rounds (default: the task's epochs)")
    flower.add_argument(
        "--round-timeout", type=float, default=120.0, help="seconds a round waits for replies; later ones are absent"
    )
    flower.add_argument(
        "--ray-address", default=None, help="prove a chunked task's chunks on this Ray cluster (host:port or auto)"
    )
    flower.add_argument("--app", type=Path, default=Path("examples/flower-digits"), help="the Flower app's folder")
    flower.set_defaults(run=_flower)

    signer = commands.add_parser(
        "signer",
        help="a client's signer beside its SuperNode: holds the staked key and signs only update commitments, "
        "for enrolled Active tasks and the open epoch of its own node, one per task and epoch",
    )
    add_chain_options(signer)
    signer.add_argument(
        "--slashing-protection",
        type=Path,
        required=True,
        metavar="FILE",
        help="the SQLite file recording every commitment signed (created if missing); keep it across restarts",
    )
    signer.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one, printed at start)")
    signer.set_defaults(run=_signer)

    chain = commands.add_parser("chain", help="run a local anvil node on 127.0.0.1")
    chain.add_argument(
        "--port",
        type=int,
        default=8545,
        help="port on 127.0.0.1 for anvil's JSON-RPC (default 8545); a taken port is an error",
    )
    chain.set_defaults(run=_chain)

    bench = commands.add_parser(
        "bench", help="measure rows, time, memory and gas of the round circuit against a naive baseline"
    )
    bench.add_argument(
        "--profile",
        choices=["quick", "standard", "rules", "accuracy", "full", "chunked"],
        default="standard",
        help="quick: tiny points; standard: (8,256), (16,1024), both rules, and the accuracy proof; "
        "rules: Multi-Krum and NNM + Multi-Krum at (16,1024); "
        "accuracy: the accuracy proof for 64, 100, 360 samples; full: n 4..32 x d 64..4096; "
        "chunked: rounds proven in chunks, n=8 (C 256, 1024) and n=16 (C 64, 128) x d 1024, 4096, "
        "with gas on the embedded EVM and an extrapolation to d = 10^6, 10^7",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="same as --profile quick (a minute or two); with --profile chunked: one tiny point (n=5, C=8, d=24)",
    )
    bench.add_argument(
        "--d",
        type=_int_list,
        default=None,
        metavar="D,D,...",
        help="--profile chunked: the update lengths to measure (default 1024,4096), e.g. 1000,10000,100000",
    )
    bench.add_argument(
        "--shapes",
        type=_shape_list,
        default=None,
        metavar="NxC,...",
        help="--profile chunked: the chunk shapes to measure (default 8x256,8x1024,16x64,16x128)",
    )
    bench.add_argument(
        "--chain",
        choices=["embedded", "anvil"],
        default=None,
        help="--profile chunked: verify on the embedded py-evm (default) or on a local anvil node the bench "
        "starts and stops (seconds instead of minutes for thousands of chunks)",
    )
    bench.add_argument(
        "--work",
        type=Path,
        default=None,
        help="--profile chunked: keep the keys and the proven chunks in this folder, and resume there: a "
        "run stopped after hours continues at its first unproven chunk (the seconds are those of the chunks "
        "each run proves)",
    )
    bench.add_argument(
        "--per-transaction",
        type=int,
        default=None,
        help="--profile chunked: chunk proofs per staging transaction (default 4)",
    )
    bench.add_argument(
        "--workers",
        type=int,
        default=None,
        help="--profile chunked: chunks proven at once (default 1: a chunk's seconds are one prover's)",
    )
    bench.add_argument(
        "--limit", type=float, default=None, help="seconds per point before it is recorded as over the limit"
    )
    bench.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="folder for results.jsonl/.json/.md/.png"
    )
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
    except OSError as error:  # e.g. the node stopped answering mid-command
        print(f"stakelearn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stakelearn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
