"""Call recordings made by the robot (voiceplat/recording/) in whole calls over a real WebSocket:
the robot with fake providers, the simulated caller. The recording's left channel must be what
the caller sent and its right channel what the caller heard, on the same clock (found by
cross-correlation against the simulator's own tracks), with a barge-in's cut in it."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

import asyncpg
import numpy as np

from tests.conftest import FIXTURES, read_call_records
from tests.integration.stored import mongo_documents
from tests.integration.test_calls import final_records
from tests.integration.test_storage import open_recorder
from tests.storage_servers import StoreEnv
from voiceplat.simulator import BargeIn, Say, run_call
from voiceplat.storage.records import CallRecord, CallUpdated

YES = FIXTURES / "ru_da.wav"  # 0.7 s: what the caller says matters only to the VAD
WAIT = FIXTURES / "ru_wait.wav"
LONG_QUESTION = "Расскажите подробно о ценах, часах работы и адресе клиники"
RATE = 8000
MAX_LAG_S = 1.0


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE)
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2).astype(np.float64)


def samples(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2").astype(np.float64)


def best_lag(recorded: np.ndarray, reference: np.ndarray, max_lag_s: float) -> tuple[float, float]:
    """(lag in ms, normalised correlation) of the cross-correlation peak within ±max_lag_s;
    a positive lag: the reference is later than the recording."""
    n = len(recorded) + len(reference)
    spectrum = np.fft.rfft(reference, n) * np.conj(np.fft.rfft(recorded, n))
    corr = np.fft.irfft(spectrum, n)
    window = int(max_lag_s * RATE)
    lags = np.concatenate((np.arange(0, window + 1), np.arange(-window, 0)))
    values = np.concatenate((corr[: window + 1], corr[-window:]))
    peak = int(np.argmax(values))
    norm = np.linalg.norm(recorded) * np.linalg.norm(reference)
    return lags[peak] * 1000 / RATE, float(values[peak] / norm)


def window_lags(recorded: np.ndarray, reference: np.ndarray) -> list[tuple[float, float]]:
    """(lag in ms, normalised correlation) of each 200 ms window of sound in `reference`, found
    in `recorded` within ±300 ms. Windows, not the whole track: an underrun on a busy machine
    delays what follows it, and the lag may differ a little from one stretch to the next."""
    size, pad, sub = int(0.2 * RATE), int(0.3 * RATE), RATE // 100
    found = []
    for start in range(pad, len(reference) - size - pad, size):
        ref = reference[start : start + size]
        if np.sqrt(np.mean(ref.reshape(-1, sub) ** 2, axis=1)).min() < 100:
            continue  # not sound all through
        rec = recorded[start - pad : start + size + pad]
        corr = np.correlate(rec, ref, mode="valid")  # offset k: rec[k : k + size]
        energy = np.convolve(rec**2, np.ones(size), mode="valid")
        scores = corr / (np.sqrt(np.maximum(energy, 1e-9)) * np.linalg.norm(ref))
        k = int(np.argmax(scores))
        found.append(((pad - k) * 1000 / RATE, float(scores[k])))
    return found


def loud_ms(track: np.ndarray, start_ms: float, end_ms: float) -> float:
    """Milliseconds of 10 ms windows in [start, end) with sound (RMS over 100)."""
    window = RATE // 100
    part = track[int(start_ms * RATE / 1000) : int(end_ms * RATE / 1000)]
    frames = part[: len(part) // window * window].reshape(-1, window)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > 100) * 10)


def has(record: dict, field: str) -> bool:
    value = record["call"][field]
    return bool(value) and (field != "recording" or Path(value).exists())


async def recording_of(robot: Path, field: str = "recording") -> dict:
    """The call's final record once it has `field` (and the file, for "recording"; a failed
    write's amendment comes after the finished record), bounded at a limit only a hang reaches."""
    async with asyncio.timeout(60):
        while True:
            (record,) = await final_records(robot)
            if has(record, field):
                return record
            await asyncio.sleep(0.05)


async def test_the_recording_is_what_the_caller_said_and_heard(make_robot, robot_server) -> None:
    robot = make_robot(
        # The LLM says back what it heard: a long answer to talk over, then a short one.
        asr={"provider": "fake", "texts": [LONG_QUESTION, "Стоп."]},
        llm={"provider": "fake", "reply": "{text}"},
        tts={"provider": "fake", "ms_per_char": 80, "noise": True},  # one sharp correlation peak
        greeting_text="Алло, клиника слушает.",
        recording={"enabled": True},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(
        url, [Say(YES), BargeIn(WAIT)], barge_in_after_s=1.0, metadata={"callId": "rec-1"}
    )
    assert result.ok, result.errors

    record = await recording_of(robot)
    path = Path(record["call"]["recording"])
    assert path.parent.parent == robot / "recordings" and path.name == "rec-1.wav"
    assert path.parent.name == record["call"]["started_at"][:10]  # the call's UTC day
    assert record["call"]["recording_error"] is None
    stereo = read_stereo(path)
    caller, robot_track = stereo[:, 0], stereo[:, 1]

    sent = samples(result.caller_audio)
    lag_ms, score = best_lag(caller, sent, MAX_LAG_S)
    assert abs(lag_ms) <= 20 and score > 0.95, (lag_ms, score)
    # The whole call is there: as long as what the caller sent, give or take the lead.
    assert abs(len(caller) - len(sent)) / RATE < 1.0

    # The robot audio the caller heard is on the right channel, at the same time give or take
    # what the network and the peer's buffer add (the caller hears it a little later).
    heard = samples(result.robot_heard)
    windows = window_lags(robot_track, heard)
    assert len(windows) >= 10  # the greeting and two answers: about 3.5 s of robot audio heard
    matched = [lag for lag, score in windows if score > 0.9 and -20 <= lag <= 200]
    assert len(matched) >= 0.8 * len(windows), windows
    print(f"robot audio heard {np.median(matched):.0f} ms (median) after the recording has it")

    barge = result.utterances[1]
    assert barge.kind == "barge_in" and barge.kill_audio is True
    assert barge.speech_start_ms is not None and barge.kill_audio_after_ms is not None
    cut_ms = barge.speech_start_ms + barge.kill_audio_after_ms
    # The robot talked up to the barge-in, then (its unheard audio flushed) fell silent.
    assert loud_ms(robot_track, barge.speech_start_ms - 500, barge.speech_start_ms) >= 250
    assert loud_ms(robot_track, cut_ms + 150, cut_ms + 1150) == 0
    # The caller's talk-over is on the left, at the time the simulator sent it.
    assert loud_ms(caller, barge.speech_start_ms, barge.speech_start_ms + 500) >= 300
    cut = next(t for t in record["turns"] if t["role"] == "robot" and t["text"] == LONG_QUESTION)
    assert cut["interrupted"] and cut["heard_text"]


async def test_a_recording_that_cannot_be_written_leaves_the_call_alone(
    make_robot, robot_server
) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Хочу записаться"]},
        llm={"provider": "fake", "reply": "Да."},
        greeting_text="Алло.",
        recording={"enabled": True, "dir": "blocked/recordings"},
    )
    (robot / "blocked").write_text("a file where the recordings folder should be")
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(YES)], metadata={"callId": "rec-2"})

    assert result.ok, result.errors
    assert len(result.answers) == 2  # greeting and answer: the call went on as usual
    record = await recording_of(robot, "recording_error")
    call = record["call"]
    assert (call["status"], call["end_reason"]) == ("completed", "caller_hangup")
    assert call["recording"].endswith(
        "/blocked/recordings/" + call["started_at"][:10] + "/rec-2.wav"
    )
    assert (
        call["recording_error"].startswith("cannot write ")
        and "Not a directory" in call["recording_error"]
    )
    assert [r["call"]["call_id"] for r in read_call_records(robot)] == ["rec-2"]
    assert json.dumps(record, ensure_ascii=False)  # the amended file is whole JSON


async def test_the_recording_fields_reach_the_stores(stores: StoreEnv, tmp_path: Path) -> None:
    """The path written when the call opens, the error amended after it (and a summary amended
    later leaves it be), in the JSON file, PostgreSQL (migration 005) and MongoDB; a late replay
    of an older write does not erase the error."""
    recorder, sinks = open_recorder(stores.env, tmp_path)
    await recorder.start()
    path = "/srv/recordings/2026-12-02/r-0.wav"
    log = recorder.open_call(
        CallRecord(call_id="r-0", robot="clinic", mode="pipeline", recording=path)
    )
    log.finish("completed", "caller_hangup")
    finished = log.record
    for sink in sinks:
        await asyncio.wait_for(sink.drained(), 60)
    log.amend(recording_error=f"cannot write {path}: No space left on device")
    log.amend(summary="Итог.")
    empty = recorder.open_call(
        CallRecord(call_id="r-1", robot="clinic", mode="pipeline", recording=path + "1")
    )
    empty.finish("failed", "protocol_error")
    empty.amend(recording=None)  # nothing to record: no file
    for sink in sinks:
        await asyncio.wait_for(sink.drained(), 60)
    for sink in sinks:
        if sink.name in ("postgres", "mongo"):
            await sink.handle(CallUpdated(finished))  # an older write replayed late
            await asyncio.wait_for(sink.drained(), 60)
    await recorder.aclose()

    error = f"cannot write {path}: No space left on device"
    records = {
        r["call"]["call_id"]: r["call"]
        for r in (json.loads(p.read_text()) for p in (tmp_path / "logs").glob("*.json"))
    }
    assert (records["r-0"]["recording"], records["r-0"]["recording_error"]) == (path, error)
    assert records["r-1"]["recording"] is None
    conn = await asyncpg.connect(stores.env["POSTGRES_DSN"])
    try:
        row = await conn.fetchrow(
            "SELECT recording, recording_error, summary FROM calls WHERE call_id = 'r-0'"
        )
        empty_row = await conn.fetchrow("SELECT recording FROM calls WHERE call_id = 'r-1'")
    finally:
        await conn.close()
    assert tuple(row) == (path, error, "Итог.")
    assert empty_row["recording"] is None
    documents = [d for d in await mongo_documents(stores.env["MONGO_URI"]) if d["call_id"] == "r-0"]
    (document,) = documents
    assert (document["recording"], document["recording_error"]) == (path, error)
