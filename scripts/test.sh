#!/usr/bin/env bash
# Set up (idempotently) and run the test suite. Extra arguments go to pytest.
#   scripts/test.sh           the CI suite: lint and format check (ruff), then every test not marked slow
#   scripts/test.sh --slow    only the slow tests (larger circuits)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker="slow"; shift; fi
if [ $# -eq 0 ] && [ "$marker" = "not slow" ]; then
  echo "lint: ruff check and ruff format --check" >&2
  "$root/.venv/bin/ruff" check --quiet .
  "$root/.venv/bin/ruff" format --check --quiet .
fi
exec "$root/.venv/bin/python" -m pytest -m "$marker" "$@"
