"""Compile Solidity with py-solc-x, offline.

A native ``solc`` 0.8.20 is used when one is installed (on PATH or where py-solc-x keeps its
compilers); otherwise the project's adapter over npm ``solc@0.8.20`` (``tools/solc-adapter.js``,
installed by ``scripts/setup.sh``). Both speak solc's standard JSON, so py-solc-x drives either.

Library imports (``import {ECDSA} from "@openzeppelin/contracts/...";``) are read from the npm
packages in ``tools/node_modules`` (pinned by ``tools/package-lock.json``) and passed to solc as
sources under their import names: no file system access by the compiler, no absolute path in
the metadata, so the same sources always give the same bytecode.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import solcx
from solcx.exceptions import SolcError

from stakelearn.errors import ToolchainError

SOLC_VERSION = "0.8.20"
EIP170_CODE_SIZE_LIMIT = 24_576

# tools/ sits beside the design card's folders in a checkout.
TOOLS_DIR = Path(os.environ.get("STAKELEARN_TOOLS", Path(__file__).resolve().parents[1] / "tools"))
ADAPTER = TOOLS_DIR / "solc-adapter.js"
NODE_MODULES = TOOLS_DIR / "node_modules"

# `import "x";`, `import {A} from "x";`, `import * as A from "x";`, `import "x" as A;`
_IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\bfrom\s+)?["']([^"']+)["']""", re.MULTILINE)


@lru_cache(maxsize=1)
def solc_binary() -> Path:
    """The solc 0.8.20 executable to use: native if present, else the solc-js adapter."""
    native = shutil.which("solc")
    if native and str(solcx.wrapper.get_version_number(native)) == SOLC_VERSION:
        return Path(native)
    for installed in solcx.get_installed_solc_versions():
        if str(installed) == SOLC_VERSION:
            return Path(solcx.get_executable(installed))
    if ADAPTER.exists() and (TOOLS_DIR / "node_modules" / "solc").exists():
        return ADAPTER
    raise ToolchainError(
        f"no solc {SOLC_VERSION} found: run scripts/setup.sh (installs npm solc@{SOLC_VERSION} "
        "into tools/) or put a native solc 0.8.20 on PATH"
    )


def with_imports(sources: dict[str, str]) -> dict[str, str]:
    """``sources`` plus every library file they import, transitively, read from ``tools/node_modules``.
    Relative imports resolve against the importing file's name, as solc resolves them."""
    resolved = dict(sources)
    todo = list(sources)
    while todo:
        importer = todo.pop()
        for path in _IMPORT.findall(resolved[importer]):
            name = (
                posixpath.normpath(posixpath.join(posixpath.dirname(importer), path)) if path.startswith(".") else path
            )
            if name in resolved:
                continue
            file = NODE_MODULES / name
            if importer in sources and path.startswith(".") or not file.is_file():
                raise ToolchainError(
                    f"{importer} imports {path}: not among the sources nor in {NODE_MODULES} (run scripts/setup.sh)"
                )
            resolved[name] = file.read_text()
            todo.append(name)
    return resolved


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: list
    bytecode: bytes
    runtime_size: int

    @property
    def fits_eip170(self) -> bool:
        return self.runtime_size <= EIP170_CODE_SIZE_LIMIT


def compile_sources(
    sources: dict[str, str], optimize_runs: int = 200, via_ir: bool = False
) -> dict[str, CompiledContract]:
    """Compile ``{file name: source}`` (and the library files it imports) and return every
    contract by name (names must be unique across the files)."""
    request = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in with_imports(sources).items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": optimize_runs},
            "viaIR": via_ir,
            "evmVersion": "shanghai",
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    try:
        output = solcx.compile_standard(request, solc_binary=solc_binary())
    except SolcError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "solc failed"
        raise ToolchainError(f"solidity compilation failed: {first}") from error
    contracts = {}
    for file, file_contracts in output["contracts"].items():
        for name, item in file_contracts.items():
            # Artifacts are named by contract, whatever folder its file is in: a name twice is one lost.
            if name in contracts:
                raise ToolchainError(f"two contracts named {name} (one in {file}): artifacts are named by contract")
            runtime = item["evm"]["deployedBytecode"]["object"]
            contracts[name] = CompiledContract(
                name=name,
                abi=item["abi"],
                bytecode=bytes.fromhex(item["evm"]["bytecode"]["object"]),
                runtime_size=len(runtime) // 2,
            )
    return contracts
