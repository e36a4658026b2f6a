"""Our Smart Turn input equals pipecat's own, run from the pinned wheel in a scratch dir.

pipecat is not a dependency: its two files that shape the model's input (`local_smart_turn_v3.py`,
`_whisper_features.py`) are extracted from the wheel `voiceplat models prepare smart-turn-v3`
downloaded, and imported with stand-ins for the modules they import but do not use for this
(loguru, pipecat's base class and env helper). Its `_predict_endpoint` runs at an 8 kHz pipeline
rate (resampling inside, the fix for pipecat issue 3844), fed as its base class feeds it: int16 /
32768, the last 8 s. The features must be identical and so must the probability.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceplat.audio.wav import read_wav
from voiceplat.models.assemble import model_status, models_dir
from voiceplat.models.catalog import CATALOG
from voiceplat.models.wheels import WHEELS_DIR
from voiceplat.turns.smart_turn import MODEL_NAME, SmartTurn, features

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMART_TURN = "pipecat/audio/turn/smart_turn"


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__path__ = []  # importable as a package
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _load(monkeypatch: pytest.MonkeyPatch, name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pipecat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """pipecat's LocalSmartTurnAnalyzerV3 class, from the wheel, with stand-in imports."""
    wheel = models_dir() / WHEELS_DIR / CATALOG[MODEL_NAME].files[0].parts[0].package.wheel.filename  # type: ignore[union-attr]
    if model_status(MODEL_NAME).state != "ready" or not wheel.is_file():
        pytest.skip(f"Smart Turn is not prepared (run: voiceplat models prepare {MODEL_NAME})")
    with zipfile.ZipFile(wheel) as archive:
        for member in ("local_smart_turn_v3.py", "_whisper_features.py"):
            archive.extract(f"{SMART_TURN}/{member}", tmp_path)
    quiet = types.SimpleNamespace(debug=lambda *a, **k: None, trace=lambda *a, **k: None)
    _module(monkeypatch, "loguru", logger=quiet)
    for package in ("pipecat", "pipecat.audio", "pipecat.audio.turn", "pipecat.utils"):
        _module(monkeypatch, package)
    _module(monkeypatch, "pipecat.audio.turn.smart_turn")
    _module(monkeypatch, "pipecat.utils.env", env_truthy=lambda *a, **k: False)

    class BaseSmartTurn:
        def __init__(self, **kwargs: Any) -> None:
            self._sample_rate = kwargs.get("sample_rate")

    _module(
        monkeypatch, f"{SMART_TURN.replace('/', '.')}.base_smart_turn", BaseSmartTurn=BaseSmartTurn
    )
    for member in ("_whisper_features", "local_smart_turn_v3"):
        module = _load(
            monkeypatch,
            f"{SMART_TURN.replace('/', '.')}.{member}",
            tmp_path / SMART_TURN / f"{member}.py",
        )
    return module.LocalSmartTurnAnalyzerV3


class Recording:
    """Wraps an onnxruntime session and keeps the features it was given."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.features: list[np.ndarray] = []

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> Any:
        self.features.append(feeds["input_features"])
        return self.session.run(outputs, feeds)


def test_features_and_probability_match_pipecat_at_8khz(pipecat: Any) -> None:
    ours = SmartTurn.load()
    theirs = pipecat(smart_turn_model_path=str(ours.path), sample_rate=8000)
    recording = Recording(theirs._session)
    theirs._session = recording
    long_turn = b"".join(read_wav(FIXTURES / name).data for name in ("ru_long.wav", "ru_hello.wav"))
    question = read_wav(FIXTURES / "ru_question.wav").data
    cases = [question, question[: len(question) // 4 * 2], long_turn + bytes(3200)]  # 8.5 s
    for pcm in cases:
        segment = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        result = theirs._predict_endpoint(segment[-8 * 8000 :])  # as BaseSmartTurn passes it
        assert np.array_equal(features(pcm), recording.features[-1])
        assert ours.predict(pcm) == pytest.approx(result["probability"], abs=1e-6)
