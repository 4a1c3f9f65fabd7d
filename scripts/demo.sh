#!/usr/bin/env bash
# Set up (idempotently) and run the main job: `stakelearn demo` on the embedded chain.
# Extra arguments go to `stakelearn demo`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/stakelearn" demo "$@"
