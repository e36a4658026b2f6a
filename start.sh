#!/usr/bin/env bash
# The main job: set up what is missing, then run the default robot (local models) on ws://0.0.0.0:5200/
# (and SIP on 5260), with the web pages in the same process on http://127.0.0.1:8000/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh run
exec .venv/bin/python run.py "${1:-robots/pipeline_russian}" --web-port 8000
