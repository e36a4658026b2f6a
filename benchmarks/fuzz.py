"""The fuzz properties of tests/fuzz run long: examples per second of each, and what they found.

The suite runs each property with the `ci` profile (200 examples, about a minute for all); this
runs the same properties with the `long` profile (`--examples` each, default 5000), so rarer
inputs get tried. A finding is printed with hypothesis's shrunk example and the line to reproduce
it (`@reproduce_failure`); a property the suite marks xfail (a fix pending in a file another
slice owns) is expected to find its bug and is listed as such.

    .venv/bin/python benchmarks/fuzz.py [--examples 5000] [-k spool] [--list]
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "tests.fuzz.test_fuzz_media_codecs",
    "tests.fuzz.test_fuzz_sip_realtime",
    "tests.fuzz.test_fuzz_config",
    "tests.fuzz.test_fuzz_spool",
]


@dataclass
class Outcome:
    name: str
    examples: int
    seconds: float
    finding: str | None
    expected: bool
    """The suite marks it xfail: a known finding, fix pending."""


def properties(filter_text: str | None) -> list[tuple[str, Callable[[], None], bool]]:
    """(module.test name, the hypothesis test, marked xfail) for every property."""
    found = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, test in vars(module).items():
            if not name.startswith("test_") or not hasattr(test, "hypothesis"):
                continue  # plain tests (parametrized examples) are the suite's alone
            short = module_name.rsplit(".", 1)[1].removeprefix("test_fuzz_")
            full = f"{short}.{name.removeprefix('test_')}"
            if filter_text and filter_text not in full:
                continue
            marks = getattr(test, "pytestmark", [])
            found.append((full, test, any(mark.name == "xfail" for mark in marks)))
    return found


def run(name: str, prop: Callable[[], None], expected: bool) -> Outcome:
    counter = {"examples": 0}
    inner = prop.hypothesis.inner_test  # type: ignore[attr-defined]

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter["examples"] += 1
        return inner(*args, **kwargs)

    prop.hypothesis.inner_test = counted  # type: ignore[attr-defined]
    started = time.perf_counter()
    finding = None
    try:
        prop()
    except Exception as error:  # a property failed: hypothesis has printed the example
        finding = "".join(traceback.format_exception_only(error)).strip().splitlines()[0][:160]
    return Outcome(name, counter["examples"], time.perf_counter() - started, finding, expected)


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| property | examples | s | examples/s | finding |",
        "|---|---:|---:|---:|---|",
    ]
    for o in outcomes:
        rate = o.examples / o.seconds if o.seconds else 0.0
        if o.finding is None:
            finding = "none" + (" (marked xfail: fixed already?)" if o.expected else "")
        else:
            finding = ("known, fix pending: " if o.expected else "**NEW**: ") + o.finding
        lines.append(f"| {o.name} | {o.examples} | {o.seconds:.1f} | {rate:.0f} | {finding} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="examples per property")
    parser.add_argument("-k", dest="filter", help="only properties whose name holds this")
    parser.add_argument("--list", action="store_true", help="list the properties and exit")
    args = parser.parse_args()
    # Before the tests are imported: their decorators read the profile then.
    os.environ["VOICEPLAT_FUZZ_PROFILE"] = "long"
    os.environ["VOICEPLAT_FUZZ_EXAMPLES"] = str(args.examples)
    sys.path.insert(0, str(ROOT))
    # The spool's "dropping a torn last line" is what its property provokes thousands of times.
    logging.getLogger("voiceplat").setLevel(logging.ERROR)
    found = properties(args.filter)
    if args.list:
        print("\n".join(name for name, _, _ in found))
        return 0
    outcomes = []
    for name, test, expected in found:
        print(f"== {name}", flush=True)
        outcomes.append(run(name, test, expected))
    total = sum(o.examples for o in outcomes)
    seconds = sum(o.seconds for o in outcomes)
    print()
    print(table(outcomes))
    print(f"\n{total} examples in {seconds:.0f} s ({total / max(seconds, 1e-9):.0f}/s)")
    new = [o for o in outcomes if o.finding is not None and not o.expected]
    print(f"new findings: {len(new)}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
