"""The ``stakelearn`` command: a registry of commands, each a module of this package.

The top-level parser names every command with its one-line help without importing any command
module (as pip's ``commands_dict``); only the module of the command being run is imported, and
it adds its own arguments (``add_arguments(parser)``) and runs (``run(args) -> int``).

Every user-facing error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from stakelearn.errors import StakeLearnError
from stakelearn.progress import show_progress


class Command(NamedTuple):
    module: str  # the module that adds the command's arguments and runs it
    help: str  # one line, shown by `stakelearn --help`


def _command(name: str, help: str) -> Command:
    return Command(f"{__name__}.{name}", help)


COMMANDS: dict[str, Command] = {
    "commit": _command("commit", "a client's step: commit to its update and sign the commitment for a task and epoch"),
    "prove": _command("prove", "prove one Multi-Krum round over client updates"),
    "deploy": _command(
        "deploy", "the operator: deploy the protocol once per chain, or (governance) approve a task shape's verifiers"
    ),
    "task": _command(
        "task", "the requester's task: create (from an ONNX model), status, reveal; settle on the accuracy proof"
    ),
    "withdraw": _command("withdraw", "withdraw this key's credit from settled tasks and, with --stake, its stake"),
    "stake": _command("stake", "a client's first step: stake STAKE_AMOUNT (or top a slashed stake up)"),
    "enroll": _command(
        "enroll",
        "enroll in a task whose verifiers the protocol approved (and, given the task's circuit options, whose "
        "verifiers' code is the protocol's for those circuits)",
    ),
    "submit": _command("submit", "the aggregator's step: submit a proven round folder (with signed commitments)"),
    "cache": _command("cache", "show the key cache ($STAKELEARN_HOME) or prune it"),
    "prove-accuracy": _command(
        "prove_accuracy",
        "prove how many samples of an evaluation set a run's final model, or any ONNX classifier, gets right",
    ),
    "verify": _command("verify", "verify a round folder (`prove`) or an accuracy folder (`prove-accuracy`)"),
    "demo": _command("demo", "the main job: a federated task end to end, proven and settled on an EVM"),
    "audit": _command("audit", "rebuild a task's MPS history from chain events and re-check it"),
    "robustness": _command(
        "robustness",
        "the attack grid on the numpy reference: accuracy, flags, and the flag ratio chosen on some seeds and "
        "judged on others",
    ),
    "flower": _command(
        "flower",
        "run a posted task's rounds as a Flower app on this machine (SuperLink and SuperNodes on 127.0.0.1)",
    ),
    "signer": _command(
        "signer",
        "a client's signer beside its SuperNode: holds the staked key and signs only update commitments, "
        "for enrolled Active tasks and the open epoch of its own node, one per task and epoch",
    ),
    "watch": _command(
        "watch",
        "watch an optimistic task: check each proposed round against its published proofs, challenge a false or "
        "withheld one and follow the dispute",
    ),
    "explorer": _command(
        "explorer",
        "a read-only page on 127.0.0.1 of a protocol's tasks: epochs, Krum scores, stakes, verification states, "
        "accuracy and payout, from the chain alone",
    ),
    "chain": _command("chain", "run a local anvil node on 127.0.0.1"),
    "bench": _command("bench", "measure rows, time, memory and gas of the round circuit against a naive baseline"),
    "gas": _command("gas", "gas of every protocol function and of one full epoch"),
}


def _version_text() -> str:
    # Package metadata only: `stakelearn --version` must not import ezkl (or torch).
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"stakelearn {installed('stakelearn')} (ezkl {installed('ezkl')})"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``stakelearn`` parser: every command by name and help, and the arguments of ``command``
    alone (its module imported here; no other command module is)."""
    parser = argparse.ArgumentParser(prog="stakelearn", description="Trustless federated learning with proven Krum.")
    parser.add_argument(
        "--version", action="version", version=_version_text(), help="print stakelearn's and ezkl's versions and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module_path, help) in COMMANDS.items():
        subparser = commands.add_parser(name, help=help)
        if name == command:
            module = importlib.import_module(module_path)
            module.add_arguments(subparser)
            subparser.set_defaults(run=module.run)
    return parser


def command_named(argv: list[str]) -> str | None:
    """The registered command ``argv`` runs, if any: its first word that is not an option (the
    top-level options take no value)."""
    word = next((word for word in argv if not word.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    show_progress()
    try:
        args = build_parser(command_named(argv)).parse_args(argv)
        return args.run(args)
    except (StakeLearnError, OSError) as error:  # OSError: e.g. the node stopped answering mid-command
        print(f"stakelearn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stakelearn: interrupted", file=sys.stderr)
        return 130
