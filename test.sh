#!/usr/bin/env bash
# Set up what is missing, then run the whole test suite (unit, integration, e2e on real local models).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
