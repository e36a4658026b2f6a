"""The call tape (voiceplat/recording/tape.py) and the channel that feeds it: both tracks on the
caller's clock, robot audio queued behind audio still playing, a barge-in cut at what was heard."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tests.doubles.channel import FakeChannel
from voiceplat.recording.call import CallRecording
from voiceplat.recording.channel import RecordingChannel
from voiceplat.recording.settings import RecordingSettings
from voiceplat.recording.tape import Tape
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord
from voiceplat.telephony.events import AudioIn


def pcm(value: int, samples: int) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


def runs(track: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) of each run of equal samples."""
    edges = np.flatnonzero(np.diff(track)) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(track)]))
    return [(int(s), int(e), int(track[s])) for s, e in zip(starts, ends, strict=True)]


def test_robot_audio_starts_where_the_caller_clock_is() -> None:
    tape = Tape()
    tape.caller(pcm(100, 800))  # 100 ms of caller audio
    assert tape.robot(pcm(7, 400), stream_ms=0.0) == 800
    tape.caller(pcm(200, 800))

    stereo = tape.render()
    assert stereo.shape == (1600, 2) and stereo.dtype == np.int16
    assert runs(stereo[:, 0]) == [(0, 800, 100), (800, 1600, 200)]
    assert runs(stereo[:, 1]) == [(0, 800, 0), (800, 1200, 7), (1200, 1600, 0)]


def test_robot_audio_queued_while_some_plays_goes_right_after_it() -> None:
    tape = Tape()
    tape.robot(pcm(1, 8000), stream_ms=0.0)  # a second of greeting, queued at once
    tape.caller(pcm(5, 2000))  # a quarter of it has played
    assert tape.robot(pcm(2, 800), stream_ms=1000.0) == 8000
    tape.caller(pcm(5, 10000))  # long after it all played: the next sentence starts "now"
    assert tape.robot(pcm(3, 80), stream_ms=1100.0) == 12000

    right = tape.render()[:, 1]
    assert runs(right) == [(0, 8000, 1), (8000, 8800, 2), (8800, 12000, 0), (12000, 12080, 3)]


def test_a_barge_in_cuts_the_robot_track_at_what_was_heard() -> None:
    tape = Tape()
    tape.robot(pcm(1, 8000), stream_ms=0.0)  # sentence 1: stream 0..1000 ms
    tape.robot(pcm(2, 8000), stream_ms=1000.0)  # sentence 2: stream 1000..2000 ms
    tape.caller(pcm(9, 4000))
    tape.cut(heard_ms=500.0)  # the caller heard half of sentence 1, then talked over it
    tape.caller(pcm(9, 8000))

    right = tape.render()[:, 1]
    assert runs(right) == [(0, 4000, 1), (4000, 12000, 0)]
    assert len(right) == 12000  # the caller's clock; the unheard 1.5 s are gone

    # The next robot turn starts at the clock, after the cut.
    assert tape.robot(pcm(4, 80), stream_ms=500.0) == 12000


def test_a_cut_inside_a_later_piece_keeps_the_earlier_ones_whole() -> None:
    tape = Tape()
    tape.robot(pcm(1, 800), stream_ms=0.0)
    tape.robot(pcm(2, 800), stream_ms=300.0)  # after a 200 ms silence pad in the stream
    tape.cut(heard_ms=350.0)
    assert runs(tape.render()[:, 1]) == [(0, 800, 1), (800, 1200, 2)]
    tape.cut(heard_ms=150.0)  # a heard position in the pad: the pieces before it stay whole
    assert runs(tape.render()[:, 1]) == [(0, 800, 1)]


def test_render_is_as_long_as_the_longer_track_and_stop_freezes_it() -> None:
    tape = Tape()
    assert tape.render().shape == (0, 2)
    tape.caller(pcm(1, 160))
    tape.robot(pcm(2, 1600), stream_ms=0.0)
    assert tape.render().shape == (1760, 2)
    tape.stop(heard_ms=100.0)  # the call ended 100 ms into the robot's audio
    tape.caller(pcm(1, 160))
    tape.robot(pcm(3, 160), stream_ms=200.0)
    stereo = tape.render()
    assert stereo.shape == (960, 2)
    assert runs(stereo[:, 1]) == [(0, 160, 0), (160, 960, 2)]
    assert runs(stereo[:, 0]) == [(0, 160, 1), (160, 960, 0)]


async def test_the_channel_tapes_both_directions_and_the_cut() -> None:
    inner = FakeChannel()
    channel = RecordingChannel(inner)
    inner.say(pcm(11, 160))
    assert (await channel.audio()).data == pcm(11, 160)
    assert channel.play(pcm(22, 1600)) == (0.0, 200.0)  # forwarded, with its positions
    assert bytes(inner.played) == pcm(22, 1600)

    taken: list[bytes] = []
    got = asyncio.Event()

    def handler(audio: AudioIn) -> None:
        taken.append(audio.data)
        if len(taken) == 2:
            got.set()

    reader = asyncio.create_task(channel.receive_audio(handler))
    inner.say(pcm(33, 160))
    inner.say(pcm(44, 160))
    async with asyncio.timeout(60):
        await got.wait()
    reader.cancel()
    assert taken == [pcm(33, 160), pcm(44, 160)]

    inner.played = inner.played[: 50 * 16]  # the fake caller heard 50 ms of it
    assert await channel.clear() == 50.0 and inner.cleared == 1
    await channel.close()
    assert inner.closed and channel.closed

    stereo = channel.tape.render()
    assert runs(stereo[:, 0]) == [(0, 160, 11), (160, 320, 33), (320, 480, 44), (480, 560, 0)]
    assert runs(stereo[:, 1]) == [(0, 160, 0), (160, 560, 22)]  # 50 ms from the clock at play


async def test_a_call_is_saved_under_its_day_and_an_empty_one_not_at_all(tmp_path: Path) -> None:
    recorder = Recorder([])
    started = datetime(2026, 12, 2, 10, tzinfo=UTC)
    saved: dict[str, CallRecord] = {}
    for call_id, said in (("full", pcm(5, 800)), ("empty", b"")):
        recording = CallRecording(RecordingSettings(enabled=True), tmp_path, FakeChannel())
        path = recording.open(call_id, started)
        log = recorder.open_call(
            CallRecord(call_id=call_id, robot="r", mode="pipeline", recording=path)
        )
        recording.channel.tape.caller(said)
        log.finish("completed", "caller_hangup")
        await recording.save(log)
        saved[call_id] = log.record
    await recorder.aclose()

    assert saved["full"].recording == str(tmp_path / "2026-12-02" / "full.wav")
    assert saved["empty"].recording is None and saved["empty"].recording_error is None
    assert [p.name for p in (tmp_path / "2026-12-02").iterdir()] == ["full.wav"]
