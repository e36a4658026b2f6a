"""One call's recording as a session uses it, and the robot's retention sweep.

The session wraps its channel (`recording_for`) when the robot's config has `recording.enabled`;
the record's `recording` is the file's path from the moment the call opens (`open`); after the
call, `save` writes the tape in a thread and, if that fails (a full disk, a read-only folder),
amends the finished record with `recording_error` (an empty tape is not written: the record's
`recording` is amended to None). Neither ever affects the call.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from voiceplat.recording.channel import RecordingChannel
from voiceplat.recording.retention import keep_recordings
from voiceplat.recording.settings import RecordingSettings, recordings_dir
from voiceplat.recording.writer import recording_path, write_recording
from voiceplat.storage.recorder import CallLog
from voiceplat.telephony.channel import CallChannel

if TYPE_CHECKING:
    from voiceplat.robot import Robot


class CallRecording:
    def __init__(self, settings: RecordingSettings, folder: Path, channel: CallChannel) -> None:
        self.settings = settings
        self.folder = folder
        self.channel = RecordingChannel(channel)
        self.path: Path | None = None

    def open(self, call_id: str, started_at: datetime) -> str:
        """The call opens: decides the file's path (the record's `recording`)."""
        self.path = recording_path(self.folder, call_id, started_at, self.settings.format)
        return str(self.path)

    async def save(self, call: CallLog) -> None:
        """After the call: writes the tape; a failure is the finished record's recording_error."""
        if self.path is None:
            return
        tape = self.channel.tape
        if tape.now == 0 and tape.robot_end == 0:
            # Nothing was said either way (a peer gone before its metadata): no empty file.
            if call.finished:
                call.amend(recording=None)
            return
        error = await write_recording(tape, self.path, self.settings.format)
        if error is not None and call.finished:
            call.amend(recording_error=error)


def recording_for(robot: Robot, channel: CallChannel) -> CallRecording | None:
    """The call's recording when the robot records its calls (None otherwise)."""
    settings = robot.config.recording
    if not settings.enabled:
        return None
    return CallRecording(settings, recordings_dir(robot.directory, settings), channel)


def start_retention(robot: Robot) -> asyncio.Task[None] | None:
    """The robot's hourly sweep of old recordings (first one now), when it records calls;
    cancel the task when the robot stops."""
    settings = robot.config.recording
    if not settings.enabled:
        return None
    folder = recordings_dir(robot.directory, settings)
    return asyncio.create_task(
        keep_recordings(folder, settings.retention_days), name=f"recordings-{robot.name}"
    )
