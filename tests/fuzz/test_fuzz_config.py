"""The robot loader under any config.json: a valid robot or a RobotError naming the file, never
a traceback.

config.json is what a robot author edits by hand, so any JSON at all (and text that is no JSON)
goes in, and so do the shipped robots' configs with any part replaced, dropped or added: those
get past the first checks into the sections' own validators, the provider settings, the
knowledge base and the tracks.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.conftest import ECHO_ROBOT, ROOT
from tests.fuzz.profiles import scaled
from tests.fuzz.strategies import json_values, mutations
from voiceplat.config import RobotConfig
from voiceplat.errors import RobotError
from voiceplat.robot import load_robot

SHIPPED = [
    *sorted(folder for folder in (ROOT / "robots").iterdir() if (folder / "config.json").is_file()),
    ECHO_ROBOT,
]
SHIPPED_BY_NAME = {folder.name: folder for folder in SHIPPED}
WORDS = [*sorted(RobotConfig.model_fields), "provider", "fake", "enabled", "model", "voice"]
WORDS += ["language", "text", "target", "transfer", "repeat", "hangup", "*", "1", "tone"]
TEMPLATES = {folder.name: json.loads((folder / "config.json").read_text()) for folder in SHIPPED}

CONFIGS = st.one_of(
    st.sampled_from(sorted(TEMPLATES)).flatmap(
        lambda name: st.tuples(st.just(name), mutations(TEMPLATES[name], WORDS).map(json.dumps))
    ),
    st.tuples(st.sampled_from(sorted(TEMPLATES)), json_values(WORDS).map(json.dumps)),
    st.tuples(st.sampled_from(sorted(TEMPLATES)), st.text(max_size=30)),
)


@functools.cache
def _folders() -> Path:
    """A copy of every shipped robot folder (its prompt, knowledge, tracks), made once: each
    example only rewrites the copy's config.json."""
    root = Path(tempfile.mkdtemp(prefix="voiceplat-fuzz-config-"))
    atexit.register(shutil.rmtree, root, True)
    for folder in SHIPPED:
        shutil.copytree(folder, root / folder.name, ignore=shutil.ignore_patterns("logs", ".env"))
    return root


def _load(name: str, config: str) -> Any:
    folder = _folders() / name
    (folder / "config.json").write_text(config, encoding="utf-8")
    try:
        return load_robot(folder, root_dir=_folders())  # no .env of the checkout's
    except RobotError as error:
        return error


@scaled(0.5)
@given(robot_and_config=CONFIGS)
@example(robot_and_config=("echo", '{"dtmf": {"1": {"transfer": []}}}'))
@example(robot_and_config=("echo", '{"vad": {"silence_ms": 1e999}}'))
@example(robot_and_config=("echo", '{"asr": {"provider": "fake", "language": NaN}}'))
@example(robot_and_config=("echo", "[" * 100_000))
def test_any_config_is_a_robot_or_an_error_naming_the_file(
    robot_and_config: tuple[str, str],
) -> None:
    name, config = robot_and_config
    result = _load(name, config)
    event("a robot" if not isinstance(result, RobotError) else "RobotError")
    if isinstance(result, RobotError):
        assert result.problems
        folder = str(_folders() / name)
        for line in result.problems:
            assert line.startswith(folder), line  # the file the author has to fix, first
            assert "Traceback" not in line
    else:
        assert result.config.mode in ("pipeline", "realtime", "llm_script")


def test_every_shipped_robot_loads() -> None:
    """The templates are valid robots: the mutations start from something that loads."""
    for name, folder in SHIPPED_BY_NAME.items():
        result = _load(name, (folder / "config.json").read_text())
        assert not isinstance(result, RobotError), (name, result)
