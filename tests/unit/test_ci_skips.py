"""tests/ci_skips.py: with CI=true every kind of skip fails, except one marked ci_may_skip; without
it they stay skips. Runs pytest in a subprocess on a small test file written here."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPPING_TESTS = """
import pytest

@pytest.fixture
def model():
    pytest.skip("whisper-base is not assembled")

def test_skip_in_test():
    pytest.skip("redis-server (apt) is not installed")

def test_skip_in_fixture(model):
    pass

def test_importorskip():
    pytest.importorskip("no_such_package_for_the_ci_skip_test")

@pytest.mark.skipif(True, reason="needs openssl")
def test_skipif_mark():
    pass

@pytest.mark.ci_may_skip("runs only where a GPU is present")
def test_allowed_skip():
    pytest.skip("no GPU here")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False

def test_passing():
    assert True
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_package_for_the_ci_skip_test")

def test_never_collected():
    pass
"""


def run_pytest(folder: Path, ci: str | None) -> dict[str, str]:
    """Outcome per test name (and per module whose collection failed), from pytest's JUnit XML."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    report = folder / "report.xml"
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider"),
            *("--rootdir", str(folder), f"--junitxml={report}", "-q"),
            *("--continue-on-collection-errors", str(folder)),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in {"failure", "error", "skipped"}]
        name = case.get("name") or ""
        outcomes[name or case.get("classname", "")] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    (tmp_path / "test_skipped_module.py").write_text(SKIPPED_MODULE)
    return tmp_path


def test_under_ci_every_skip_fails_except_an_allowed_one(suite: Path) -> None:
    outcomes = run_pytest(suite, "true")
    assert outcomes == {
        "test_skip_in_test": "failure",
        "test_skip_in_fixture": "error",  # the skip came from the fixture's setup
        "test_importorskip": "failure",
        "test_skipif_mark": "error",  # skipif is evaluated at setup
        "test_allowed_skip": "skipped",
        "test_expected_failure": "skipped",  # how JUnit XML writes an xfail
        "test_passing": "passed",
        "test_skipped_module": "error",  # the module's collection failed
    }


def test_without_ci_skips_stay_skips(suite: Path) -> None:
    outcomes = run_pytest(suite, None)
    assert outcomes == {
        "test_skip_in_test": "skipped",
        "test_skip_in_fixture": "skipped",
        "test_importorskip": "skipped",
        "test_skipif_mark": "skipped",
        "test_allowed_skip": "skipped",
        "test_expected_failure": "skipped",
        "test_passing": "passed",
        "test_skipped_module": "skipped",
    }
    assert run_pytest(suite, "false") == outcomes
