"""`recording` in a robot's config.json: whether its calls are recorded, where, for how long."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DIR = "recordings"


class RecordingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False, description="record every call: a stereo file, caller left, robot right, 8 kHz"
    )
    dir: str | None = Field(
        None,
        description="where recordings go (a relative path is relative to the robot folder); "
        f"None: <robot folder>/{DEFAULT_DIR}",
    )
    retention_days: int = Field(
        30, ge=1, description="recordings older than this are deleted (checked hourly)"
    )
    format: Literal["wav", "flac"] = Field(
        "wav", description="wav (16-bit PCM) or flac (lossless, about half the size)"
    )


def recordings_dir(robot_dir: Path, settings: RecordingSettings) -> Path:
    """The folder a robot's recordings go to, as an absolute path (no file-system access)."""
    folder = Path(settings.dir) if settings.dir else Path(DEFAULT_DIR)
    return (robot_dir / folder).absolute()  # an absolute `dir` stays as it is


def recording_problems(robot_dir: Path, settings: RecordingSettings) -> list[str]:
    """What `voiceplat check` reports: a recordings folder the robot could not write to, FLAC
    without the package that writes it."""
    if not settings.enabled:
        return []
    if settings.format == "flac" and find_spec("soundfile") is None:
        return [
            "recording: format flac needs the soundfile package "
            "(pip install soundfile, or the cloud extra); or use format wav"
        ]
    folder = recordings_dir(robot_dir, settings)
    # The nearest folder that exists must be writable (the rest is created on the first call).
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"recording: dir {folder}: {existing} is not a folder"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"recording: dir {folder}: {existing} is not writable by this user"]
    return []
