#!/usr/bin/env bash
# Set up what is missing, then check everything: lint, formatting, types, and the whole test suite
# (unit, integration, e2e on real local models). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # files and settings: pyproject.toml [tool.mypy]
exec .venv/bin/python -m pytest --durations=30 "$@"
