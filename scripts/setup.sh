#!/usr/bin/env bash
# Set up everything StakeLearn needs on a fresh machine, idempotently:
#   .venv/          Python 3.11 virtual environment (torch pinned to the 2.13.0 CPU build), with
#                   the test tools and Ray (chunk proofs on a cluster)
#   tools/          npm tools: solc-js 0.8.20 (Solidity compiler), anvil (local EVM node) and
#                   OpenZeppelin Contracts 5.0.2 (Solidity sources the build compiles in)
#   ~/.svm/0.8.20/  the solc ezkl looks for when it generates verifiers: a link to the solc-js
#                   adapter, copied with npm solc to ~/.local/share/stakelearn/solc-0.8.20/
# A second run with nothing changed returns in about a second.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

stamp_of() { cat "$root/pyproject.toml" "$root/tools/package.json" "$root/scripts/setup.sh" | sha256sum | cut -c1-16; }
stamp_file="$venv/.stakelearn-setup"

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi

if [ "$(cat "$stamp_file" 2>/dev/null)" != "$(stamp_of)" ]; then
  echo "setup: installing Python packages" >&2
  "$venv/bin/pip" install --quiet --upgrade pip
  # The pinned CPU build; any other torch version pulls a multi-GB CUDA build.
  "$venv/bin/pip" install --quiet "torch==2.13.0"
  "$venv/bin/pip" install --quiet -e "$root[test,ray,flower]"
  # ByzFL's aggregators and attacks (the robustness grid, the NNM reference's test). Its
  # declared torchvision does not load beside the CPU torch, and only its benchmark needs it:
  # see pipeline/federation/byzfl_parts.py.
  "$venv/bin/pip" install --quiet --no-deps "byzfl==0.0.11"
  echo "setup: installing npm tools into tools/" >&2
  (cd "$root/tools" && npm install --no-audit --no-fund --loglevel=error)
  stamp_of > "$stamp_file"
fi

# ezkl finds solc 0.8.20 only through svm's folder (~/.svm/0.8.20/); offline it cannot download
# one: link the solc-js adapter there, from a copy outside this checkout.
bash "$root/scripts/install-solc-adapter.sh"
