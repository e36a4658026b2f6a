"""Writing a call's tape (voiceplat/recording/writer.py) and deleting old recordings
(retention.py): the files read back as written, a failure is an error text, not an exception."""

from __future__ import annotations

import errno
import os
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voiceplat.recording.retention import SWEEP_INTERVAL_S, delete_old_recordings, keep_recordings
from voiceplat.recording.settings import RecordingSettings, recording_problems, recordings_dir
from voiceplat.recording.tape import Tape
from voiceplat.recording.writer import recording_path, write_recording

DAY_S = 86400


def a_tape() -> tuple[Tape, np.ndarray]:
    rng = np.random.default_rng(13)
    caller = rng.integers(-20000, 20000, 8000, dtype=np.int16)
    robot = rng.integers(-20000, 20000, 4000, dtype=np.int16)
    tape = Tape()
    tape.caller(caller.tobytes())
    tape.robot(robot.tobytes(), stream_ms=0.0)
    left = np.concatenate([caller, np.zeros(4000, np.int16)])
    right = np.concatenate([np.zeros(8000, np.int16), robot])  # placed at the caller's clock
    return tape, np.stack([left, right], axis=1)


def test_the_path_is_a_day_folder_and_the_call_id_made_safe(tmp_path: Path) -> None:
    started = datetime(2026, 12, 2, 23, 59, tzinfo=UTC)
    path = recording_path(tmp_path, "../../etc/passwd", started, "wav")
    assert path == tmp_path / "2026-12-02" / "etcpasswd.wav"
    settings = RecordingSettings(enabled=True, dir="rec")
    assert recordings_dir(Path("robots/x"), settings) == Path("robots/x/rec").absolute()
    assert recordings_dir(Path("robots/x"), RecordingSettings(dir="/srv/rec")) == Path("/srv/rec")
    assert recordings_dir(Path("/r/x"), RecordingSettings()) == Path("/r/x/recordings")


async def test_a_wav_reads_back_as_the_tape(tmp_path: Path) -> None:
    tape, expected = a_tape()
    path = tmp_path / "2026-12-02" / "c1.wav"
    assert await write_recording(tape, path, "wav") is None
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(frames, expected)
    assert [p.name for p in path.parent.iterdir()] == ["c1.wav"]  # no temporary file left


async def test_a_flac_reads_back_as_the_tape(tmp_path: Path) -> None:
    tape, expected = a_tape()
    path = tmp_path / "c1.flac"
    assert await write_recording(tape, path, "flac") is None
    frames, rate = soundfile.read(path, dtype="int16")
    info = soundfile.info(path)
    assert (info.format, info.subtype, rate) == ("FLAC", "PCM_16", 8000)
    assert np.array_equal(frames, expected)


async def test_a_write_error_is_an_error_text(tmp_path: Path) -> None:
    tape, _ = a_tape()
    (tmp_path / "full").write_text("a file where the day folder should be")
    path = tmp_path / "full" / "c1.wav"
    error = await write_recording(tape, path, "wav")
    assert error == f"cannot write {path}: File exists ({tmp_path / 'full'})"


async def test_a_full_disk_is_an_error_text_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: wave.Wave_write, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(wave.Wave_write, "writeframes", full)
    tape, _ = a_tape()
    path = tmp_path / "2026-12-02" / "c1.wav"
    error = await write_recording(tape, path, "wav")
    assert error == f"cannot write {path}: No space left on device"
    assert list(path.parent.iterdir()) == []  # the temporary file is gone too


def test_check_reports_a_recordings_dir_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    bad = RecordingSettings(enabled=True, dir=str(tmp_path / "taken" / "rec"))
    (problem,) = recording_problems(tmp_path, bad)
    assert "is not a folder" in problem and "taken" in problem
    good = RecordingSettings(enabled=True, dir="not/yet/made")
    assert recording_problems(tmp_path, good) == []
    assert recording_problems(tmp_path, bad.model_copy(update={"enabled": False})) == []


def test_check_reports_flac_without_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flac = RecordingSettings(enabled=True, format="flac")
    assert recording_problems(tmp_path, flac) == []
    monkeypatch.setattr("voiceplat.recording.settings.find_spec", lambda name: None)
    (problem,) = recording_problems(tmp_path, flac)
    assert "soundfile" in problem and "format wav" in problem


def test_retention_deletes_old_recordings_only(tmp_path: Path) -> None:
    now = 1_800_000_000.0

    def recording(day: str, name: str, age_days: float) -> Path:
        path = tmp_path / day / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"RIFF")
        os.utime(path, (now - age_days * DAY_S, now - age_days * DAY_S))
        return path

    old_day = [recording("2026-10-01", "a.wav", 40), recording("2026-10-01", "b.flac", 31)]
    mixed_old = recording("2026-11-01", "c.wav", 30.5)
    mixed_new = recording("2026-11-01", "d.wav", 29.5)
    today = recording("2026-12-02", "e.wav", 0)
    notes = recording("2026-10-01", "notes.txt", 400)  # not a recording: left alone
    other = recording("keep", "f.wav", 400)  # not a day folder: left alone

    deleted = delete_old_recordings(tmp_path, retention_days=30, now=now)

    assert sorted(deleted) == sorted([*old_day, mixed_old])
    assert all(p.exists() for p in (mixed_new, today, notes, other))
    assert not mixed_old.exists() and not any(p.exists() for p in old_day)
    notes.unlink()
    assert delete_old_recordings(tmp_path, retention_days=30, now=now) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-01", "2026-12-02", "keep"]
    assert delete_old_recordings(tmp_path / "missing", retention_days=30, now=now) == []


async def test_the_sweep_runs_at_start_then_every_hour(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    day = tmp_path / "2026-12-01"
    day.mkdir()
    first, second = day / "a.wav", day / "b.wav"
    for path, age_days in ((first, 31), (second, 29.99)):
        path.write_bytes(b"RIFF")
        os.utime(path, (now[0] - age_days * DAY_S,) * 2)
    seen: list[tuple[bool, bool]] = []

    class Stop(Exception):
        pass

    async def sleep(seconds: float) -> None:
        assert seconds == SWEEP_INTERVAL_S
        seen.append((first.exists(), second.exists()))
        if len(seen) == 2:
            raise Stop
        now[0] += seconds  # an hour later `second` is past 30 days too

    with pytest.raises(Stop):
        await keep_recordings(tmp_path, 30, clock=lambda: now[0], sleep=sleep)
    assert seen == [(False, True), (False, False)]
    assert not day.exists()
