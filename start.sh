#!/usr/bin/env bash
# The main job: set up what is missing, then run the default robot (local models) on ws://0.0.0.0:5200/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh run
exec .venv/bin/python run.py "${1:-robots/pipeline_russian}"
