"""A refused call on a streaming ingress: its record, and the "all lines are busy" phrase if any.

The ingress has accepted the connection already (a WebSocket's handshake, an AudioSocket's
TCP connection): the call's metadata comes as its first message, so the refused call's record
says who called (`end_reason` and `outcome` "refused"). With `admission.busy_phrase` (synthesised
once, on the first refusal) or `admission.busy_wav` (read once) the caller hears it before the
ingress hangs up; without, the ingress hangs up at once. No session and no model job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from pathlib import Path

from voiceplat.audio.wav import WavError, read_wav
from voiceplat.robot import Robot
from voiceplat.storage.recorder import Recorder
from voiceplat.storage.records import CallRecord, utcnow
from voiceplat.telephony.admission import AdmissionSettings, Decision
from voiceplat.telephony.channel import CallChannel
from voiceplat.telephony.events import CallMetadata

log = logging.getLogger(__name__)

REFUSED = "refused"
METADATA_WAIT_S = 5.0
"""The peer sends its metadata at once; a refused call waits no longer than this for it."""
HEARD_MARGIN_S = 5.0
BYTES_PER_S = 16000  # 8 kHz s16le


class BusyPhrase:
    """The phrase a refused call hears: made once per robot, shared by its ingresses."""

    def __init__(self, robot: Robot, settings: AdmissionSettings) -> None:
        self._robot = robot
        self._settings = settings
        self._audio: bytes | None = None
        self._failed = False
        self._lock = asyncio.Lock()

    async def audio(self) -> bytes | None:
        """8 kHz PCM, or None (no phrase configured, or it could not be made: logged once)."""
        if not self._settings.speaks or self._failed:
            return None
        async with self._lock:
            if self._audio is None and not self._failed:
                try:
                    self._audio = await self._make()
                except Exception as exc:  # a refusal must not fail for its phrase
                    log.warning("admission: busy phrase unavailable (%s); refusing silently", exc)
                    self._failed = True
            return self._audio

    async def _make(self) -> bytes:
        settings = self._settings
        if settings.busy_wav is not None:
            path = Path(self._robot.directory) / settings.busy_wav
            try:
                return read_wav(path).data
            except (OSError, WavError) as exc:
                raise ValueError(f"admission.busy_wav {path}: {exc}") from None
        assert settings.busy_phrase is not None
        from voiceplat.sessions.turn_audio import render

        return await render(self._robot.tts, settings.busy_phrase)


_phrases: dict[int, BusyPhrase] = {}


def busy_phrase_for(robot: Robot) -> BusyPhrase:
    found = _phrases.get(id(robot))
    if found is None:
        found = _phrases[id(robot)] = BusyPhrase(robot, robot.config.admission)
        weakref.finalize(robot, _phrases.pop, id(robot), None)
    return found


async def refuse_call(
    robot: Robot, channel: CallChannel, recorder: Recorder, decision: Decision, source: str
) -> None:
    """Records the refused call and plays the busy phrase (if any); the ingress then hangs up
    the way its protocol says. Never raises for the peer's failures."""
    log.info("call refused: %s", decision.detail)
    started = utcnow()
    try:
        async with asyncio.timeout(METADATA_WAIT_S):
            metadata = await channel.metadata()
    except Exception:  # no metadata (it hung up, sent garbage): recorded without it
        metadata = CallMetadata(call_id=str(uuid.uuid4()), source=source)
    call = recorder.open_call(
        CallRecord(
            call_id=metadata.call_id,
            robot=robot.name,
            mode=robot.config.mode,
            source=metadata.source,
            caller=metadata.caller,
            callee=metadata.callee,
            started_at=started,
            answered_at=started,
            status="in_progress",
            metadata={**metadata.extra, "refused": decision.reason, "detail": decision.detail},
        )
    )
    audio = await busy_phrase_for(robot).audio()
    if audio:
        with contextlib.suppress(Exception):
            await _play(channel, audio)
        call.event("busy_phrase", ms=round(len(audio) * 1000 / BYTES_PER_S))
    call.finish("completed", REFUSED, outcome=REFUSED)


async def _play(channel: CallChannel, audio: bytes) -> None:
    pacer = asyncio.ensure_future(channel.run_pacer())
    try:
        channel.play(audio)
        heard = asyncio.ensure_future(channel.wait_heard(len(audio) / BYTES_PER_S + HEARD_MARGIN_S))
        await asyncio.wait({heard, pacer}, return_when=asyncio.FIRST_COMPLETED)
        heard.cancel()
    finally:
        pacer.cancel()
        with contextlib.suppress(BaseException):
            await pacer
