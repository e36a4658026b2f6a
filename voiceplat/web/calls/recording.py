"""Which file a call's recording is, checked: only a file inside the robot's recordings folder.

The path comes from the call record, which comes from a store anyone with write access to the
database or the logs folder could edit, so it is never trusted: it must resolve (links followed)
to a regular file inside `recording.dir` of the robot that made the call.
"""

from __future__ import annotations

from pathlib import Path

from voiceplat.recording.settings import RecordingSettings, recordings_dir
from voiceplat.robot import Robot
from voiceplat.storage.records import CallRecord

MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac"}


def robot_recordings_dir(robot: Robot) -> Path:
    settings = getattr(robot.config, "recording", None)
    if not isinstance(settings, RecordingSettings):
        settings = RecordingSettings()
    return recordings_dir(robot.directory, settings).resolve()


def recording_file(robot: Robot, call: CallRecord) -> Path | None:
    """The call's recording, or None when it has none, it is missing, or it lies elsewhere."""
    recorded = call.recording
    if not recorded or "\x00" in recorded:
        return None
    folder = robot_recordings_dir(robot)
    path = Path(recorded)
    if not path.is_absolute():
        path = folder / path
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a link loop
        return None
    if not resolved.is_relative_to(folder) or not resolved.is_file():
        return None
    if resolved.suffix.lower() not in MEDIA_TYPES:
        return None
    return resolved


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
