"""Writing a tape to its file: `<dir>/<YYYY-MM-DD>/<call id>.wav` (or .flac), after the call.

Rendering and writing run in a thread (`asyncio.to_thread`): a long call's tape is ~19 MB and a
disk may be slow, and the event loop carries other calls' audio. The file is written under a
temporary name in the same folder and renamed, so a reader (the web player) never gets half a
file. `write_recording` never raises: a full disk or a write error comes back as the text the
call's record keeps in `recording_error`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from voiceplat.audio.pcm import CALL_RATE
from voiceplat.recording.tape import Tape
from voiceplat.storage.jsonfile import safe_call_id

log = logging.getLogger(__name__)


def recording_path(folder: Path, call_id: str, started_at: datetime, fmt: str) -> Path:
    """Where a call's recording goes: a folder per UTC day, the file named after the call (the
    call id comes from the network: only [A-Za-z0-9_-] of it stay, so no path escapes `folder`)."""
    day = started_at.astimezone(UTC).strftime("%Y-%m-%d")
    return folder / day / f"{safe_call_id(call_id)}.{fmt}"


def write_stereo(path: Path, frames: np.ndarray, fmt: str) -> None:
    """Writes (samples, 2) int16 frames at 8 kHz as WAV or FLAC, atomically; raises on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(temp_name)
    try:
        if fmt == "flac":
            import soundfile  # only FLAC needs it

            soundfile.write(temp, frames, CALL_RATE, format="FLAC", subtype="PCM_16")
        else:
            with wave.open(str(temp), "wb") as wav:
                wav.setnchannels(2)
                wav.setsampwidth(2)
                wav.setframerate(CALL_RATE)
                wav.writeframes(frames.astype("<i2").tobytes())
        os.chmod(temp, 0o644)  # mkstemp makes 0600 files; a recording is an ordinary file
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _render_and_write(tape: Tape, path: Path, fmt: str) -> None:
    write_stereo(path, tape.render(), fmt)


async def write_recording(tape: Tape, path: Path, fmt: str) -> str | None:
    """Renders and writes the tape off the event loop; returns None, or why it failed."""
    try:
        await asyncio.to_thread(_render_and_write, tape, path, fmt)
    except Exception as exc:
        error = f"cannot write {path}: {describe(exc)}"
        log.warning("recording not written: %s", error)
        return error
    return None


def describe(exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return "FLAC needs the soundfile package (pip install soundfile), or use format wav"
    if isinstance(exc, OSError) and exc.strerror:
        # "No space left on device", "Permission denied", and on what, when not the file itself
        culprit = (
            f" ({exc.filename})" if exc.filename and Path(exc.filename).suffix != ".tmp" else ""
        )
        return f"{exc.strerror}{culprit}"
    return f"{type(exc).__name__}: {exc}"
