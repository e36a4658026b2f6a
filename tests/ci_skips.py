"""Under CI=true a skipped test is a failed one.

Tests skip when what they need is not installed: a model (e2e), a server binary (PostgreSQL,
Redis, SecantusDB), a package, a tool (openssl). On a developer's machine that is a convenience; in
CI it would turn a broken setup step into a green run. So when the environment variable CI is
`true` (or `1`, `yes`), every skip (a `pytest.skip()` in a test or fixture, `importorskip`, a
`skipif` mark, a module skipped at import) is reported as a failure naming the reason.

A test whose skip is legitimately conditional even in CI carries the marker
`@pytest.mark.ci_may_skip("why this skip is not a missing setup step")`; none does today.
Expected failures (xfail) are not skips and are left alone.

Loaded by tests/conftest.py (`pytest_plugins`); tests/unit/test_ci_skips.py runs pytest on small
test files to check it.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

MARKER = "ci_may_skip"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(reason): this test may skip even when CI=true (every other skip fails there)",
    )


def _reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _failure(reason: str) -> str:
    return (
        f"skipped under CI=true, where a skip fails: {reason}\n"
        "Install what is missing (scripts/setup.sh test), or mark a test whose skip is "
        f"legitimately conditional with @pytest.mark.{MARKER}(reason)."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and in_ci()
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker(MARKER) is None
    ):
        report.outcome = "failed"
        report.longrepr = _failure(_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module skipped as a whole (`importorskip` or `pytest.skip(allow_module_level=True)` at
    its top) fails its collection under CI=true."""
    report = yield
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = _failure(_reason(report.longrepr))
    return report
