"""Every assertion in the test suite can fail.

An `assert` on a generator (`path.glob(...)`), a coroutine, a non-empty string or a tuple is
always true; a comparison or an un-awaited coroutine standing alone as a statement checks nothing;
`mock.assert_called_once_wiht(...)` is a typo that passes. This scan finds those in tests/ (ruff's
F631, B011, B015, PLW0129 and mypy's truthy-iterable cover parts of it; this covers all of it, here).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("voiceplat", "tests", "benchmarks")

ITERATOR_CALLS = {
    "glob",
    "rglob",
    "iterdir",
    "finditer",
    "scandir",
    "walk",
    "map",
    "filter",
    "zip",
    "iter",
    "reversed",
    "enumerate",
}
"""Calls that return a lazy iterator, which is true even when it would yield nothing."""

MOCK_ASSERTIONS = {
    "assert_called",
    "assert_called_once",
    "assert_called_with",
    "assert_called_once_with",
    "assert_any_call",
    "assert_has_calls",
    "assert_not_called",
    "assert_awaited",
    "assert_awaited_once",
    "assert_awaited_with",
    "assert_awaited_once_with",
    "assert_any_await",
    "assert_has_awaits",
    "assert_not_awaited",
}


def async_only_names(files: Iterable[Path]) -> set[str]:
    """Function names defined only with `async def` anywhere in the project: calling one makes a
    coroutine, which is true and does nothing until awaited."""
    asynchronous: set[str] = set()
    synchronous: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.AsyncFunctionDef):
                asynchronous.add(node.name)
            elif isinstance(node, ast.FunctionDef):
                synchronous.add(node.name)
    return asynchronous - synchronous


def called_name(node: ast.expr) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def always_true(test: ast.expr, coroutines: set[str]) -> str | None:
    """Why `assert <test>` cannot fail, or None."""
    if isinstance(test, ast.Tuple) and test.elts:
        return "a tuple is always true (assert x, message?)"
    if isinstance(test, ast.Constant) and test.value:
        return "a non-empty constant"
    if isinstance(test, ast.JoinedStr):
        return "an f-string"
    if isinstance(test, (ast.GeneratorExp, ast.Lambda)):
        return "a generator expression or lambda"
    if isinstance(test, ast.BoolOp):
        for value in test.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                return f"{test.op.__class__.__name__.lower()} with the string {value.value!r}"
    name = called_name(test)
    if name in ITERATOR_CALLS:
        return f"{name}() returns an iterator, true even when empty"
    if name in coroutines:
        return f"{name}() is a coroutine: not awaited, always true"
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute):
        if name in MOCK_ASSERTIONS:
            return f"{name}() returns None: call it, do not assert it"
    return None


def does_nothing(statement: ast.Expr, coroutines: set[str]) -> str | None:
    """Why the expression statement checks nothing, or None."""
    value = statement.value
    if isinstance(value, ast.Compare):
        return "a comparison whose result is thrown away (assert missing?)"
    name = called_name(value)
    # Only plain names: methods of the same name (`event.clear()`, `time.sleep()`) are often sync.
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and name in coroutines:
        return f"{name}() is a coroutine that is never awaited"
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and name:
        looks_like_assertion = name.startswith(("assert", "assret", "asert", "called_"))
        if looks_like_assertion and name not in MOCK_ASSERTIONS:
            return f"{name}() is not a mock assertion (a typo passes silently)"
    return None


def problems(source: str, filename: str, coroutines: set[str]) -> Iterator[str]:
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Assert):
            why = always_true(node.test, coroutines)
        elif isinstance(node, ast.Expr):
            why = does_nothing(node, coroutines)
        else:
            continue
        if why:
            yield f"{filename}:{node.lineno}: {why}: {ast.unparse(node)[:100]}"


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_no_assertion_in_the_tests_is_always_true() -> None:
    coroutines = async_only_names(python_files(*SOURCES))
    found = [
        line
        for path in python_files("tests", "benchmarks")
        for line in problems(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), coroutines
        )
    ]
    assert found == []


def test_the_scan_finds_each_kind() -> None:
    source = """
async def fetch(): ...
def check(robot, mock, x):
    assert (robot / "logs").glob("*.json")
    assert fetch()
    assert "always"
    assert (x == 1, "x is 1")
    assert x == "a" or "b"
    assert f"{x}"
    x == 2
    fetch()
    mock.assert_called_once_wiht(1)
    assert mock.assert_called_once()
    assert x and len(list(robot.glob("*"))) == 1
    mock.assert_called_once_with(1)
"""
    found = list(problems(source, "t.py", {"fetch"}))
    lines = [int(line.split(":")[1]) for line in found]
    assert lines == list(range(4, 14)), found  # every line but the last two
