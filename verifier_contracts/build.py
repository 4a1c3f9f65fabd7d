"""Compile the Solidity sources into committed ABI/bytecode artifacts.

    python -m stakelearn.verifier_contracts.build

Sources: ``src/`` (ours: the contracts, their ``I*`` interfaces in ``src/interfaces/``, pure
helpers in ``src/libraries/``) and ``generated/*.sol`` (written by ezkl; see
``stakelearn.prover.evm.generate_reusable_verifier``). Artifacts: ``artifacts/<Contract>.json``,
named by contract whatever folder its source is in, each headed with what generated it and the
solc version, so that deploying needs no compiler.
"""

from __future__ import annotations

import json
from pathlib import Path

from stakelearn.errors import ArtifactError
from stakelearn.files import write_json_atomic
from stakelearn.verifier_contracts.solc import SOLC_VERSION, CompiledContract, compile_sources

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
CONTRACTS = (
    "Halo2VerifierReusable",
    "RoundVerifier",
    "ChunkedRoundVerifier",
    "AccuracyVerifier",
    "StakingRegistry",
    "StakeLearnProtocol",
    "OptimisticRounds",
)


def sources(folder: str) -> dict[str, str]:
    """Every ``.sol`` file under ``folder`` (its sub-folders too), by its path from ROOT: the
    names relative imports resolve against."""
    return {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted((ROOT / folder).rglob("*.sol"))}


def compile_all() -> dict[str, CompiledContract]:
    # Ours through the IR pipeline (submitRound needs more stack than the legacy one gives);
    # ezkl's generated verifier, mostly assembly, as ezkl itself compiles it.
    compiled = {**compile_sources(sources("src"), via_ir=True), **compile_sources(sources("generated"))}
    return {name: compiled[name] for name in CONTRACTS}


def artifact_json(contract: CompiledContract) -> dict:
    return {
        "generated_by": "python -m stakelearn.verifier_contracts.build",
        "solc": SOLC_VERSION,
        "contract": contract.name,
        "runtime_size": contract.runtime_size,
        "abi": contract.abi,
        "bytecode": "0x" + contract.bytecode.hex(),
    }


def load_artifact(name: str) -> CompiledContract:
    path = ARTIFACTS / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ArtifactError(f"{path} is missing: run python -m stakelearn.verifier_contracts.build") from error
    return CompiledContract(
        name=data["contract"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"][2:]),
        runtime_size=data["runtime_size"],
    )


def main() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, contract in compile_all().items():
        write_json_atomic(ARTIFACTS / f"{name}.json", artifact_json(contract))
        print(f"{name}: {contract.runtime_size} bytes runtime")


if __name__ == "__main__":
    main()
