"""Simulated calls over SIP: `voiceplat call sip:robot@127.0.0.1:5060 --say a.wav`.

The caller is a real SIP user agent (pjsua2, `sip_phone.py`) that dials the robot, sends the
script's audio as RTP and listens to the robot's, and reports exactly what the WebSocket caller
reports (`CallResult`), made by the same `CallDriver`.

The call's clock is PJSIP's media clock. Each 20 ms the conference bridge takes one caller frame
from the call's `PlayoutBuffer` and hands over one frame of the robot's audio (after the jitter
buffer: what a phone's speaker would play). That frame is tick k of the driver: the robot audio
in it is heard at k * 20 ms, and the driver's caller frame for tick k is queued behind a small
lead (`LEAD_FRAMES`, so that a late event loop does not starve the bridge). The lead is measured
frame by frame from what the bridge has taken, and the utterances' times are moved by it: the
report's speech times are when the audio entered the call, so v2v is end of caller speech on the
line -> first robot audio out of the jitter buffer.

SIP carries no "robot audio" messages: the robot sends RTP all the time. A frame counts as robot
audio when its peak exceeds `ROBOT_AUDIO_PEAK` (silence through G.711 stays below it), so answers
are the robot's loud stretches; a silent gap inside an answer (< 300 ms) shows as an underrun,
which over SIP means the robot sent silence, from a pause in its speech or its own underrun.
`--record` writes every frame as heard, gated or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from voiceplat.audio.wav import write_stereo_wav
from voiceplat.simulator.common import DTMF_SOURCE, DtmfStep, compile_dtmf_script
from voiceplat.simulator.driver import CallDriver, CallOptions
from voiceplat.simulator.multi import numbered
from voiceplat.simulator.report import (
    CallResult,
    EventReport,
    MultiResult,
    Stats,
    ms,
)
from voiceplat.simulator.script import ScriptItem
from voiceplat.simulator.sip_phone import SipPhone, shared_phone
from voiceplat.simulator.sip_target import SipTarget
from voiceplat.telephony.ingress.sip.media import FRAME_BYTES, FRAME_MS, PlayoutBuffer

log = logging.getLogger(__name__)

LEAD_FRAMES = 5
"""Caller frames queued ahead of the media clock: how late the event loop may be (100 ms)."""
MAX_LEAD_FRAMES = 25
"""When the loop was later than the lead, the bridge sent silence and the caller's frames went
out later from then on (the report follows); beyond this lead, frames are dropped instead."""
ROBOT_AUDIO_PEAK = 100
"""A frame whose largest sample exceeds this is robot audio (A-law silence decodes to +-8)."""
END_WAIT_S = 10.0
"""After our BYE, how long to wait for the call to be over (a robot that never answers it)."""
DEFAULT_USER = "+79990000000"
SipStep = DtmfStep


class _SipLiveCall:
    """One call's loop side: PJSIP's reports in, the driver's frames out."""

    def __init__(
        self, driver: CallDriver, hangup_after_s: float | None, phone: SipPhone, t_dial: float
    ) -> None:
        self.driver = driver
        self.phone = phone
        self.handle: int | None = None
        self.playout = PlayoutBuffer(lambda _played: None)
        self.playout.write(bytes(FRAME_BYTES * LEAD_FRAMES))  # before the media clock starts
        self.written = LEAD_FRAMES
        self.loop = asyncio.get_running_loop()
        self.t_dial = t_dial
        self.hangup_after_s = hangup_after_s
        self.ended: asyncio.Future[None] = self.loop.create_future()
        self.ticks = 0
        self.dropped = 0
        self.lag_max = 0.0
        self.lead = LEAD_FRAMES
        self.heard: list[bytes] | None = [] if driver.caller_frames is not None else None
        self.codec: str | None = None
        self.setup_ms: float | None = None
        self.media_started = False
        self._seen_utterances = 0
        self._hanging_up = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what the phone reports (event loop) ---------------------------------------------------
    def on_sip_state(self, state: str, status: int, reason: str) -> None:
        after_dial_ms = ms(self.loop.time() - self.t_dial)
        if state == "CONFIRMED" and self.setup_ms is None:
            self.setup_ms = after_dial_ms
        data = {"state": state, "status": status, "reason": reason, "after_dial_ms": after_dial_ms}
        self._event("sip", data)

    def on_media(self, codec: str) -> None:
        self.codec = codec
        self.media_started = True

    def on_frame(self, data: bytes, taken: int, clock_time: float) -> None:
        lag = self.loop.time() - clock_time
        if lag > self.lag_max:
            self.lag_max = lag
        driver = self.driver
        if driver.ended:
            return
        self.ticks += 1
        k = self.ticks
        now = k * driver.period
        if self.heard is not None:
            self.heard.append(data)
        samples = np.frombuffer(data, dtype="<i2")
        if samples.size and int(np.abs(samples.astype(np.int32)).max()) > ROBOT_AUDIO_PEAK:
            driver.on_binary(data, now)
        if self.hangup_after_s is not None and now >= self.hangup_after_s:
            driver.hangup = True
        frame, _replies = driver.on_tick(k)  # SIP has no marks: there are never replies
        self._new_utterances()
        if frame is not None:
            self._send(frame, taken // FRAME_BYTES)
        elif driver.ended:
            self.hang_up()

    def _send(self, frame: bytes, taken: int) -> None:
        # This frame's place in the queue is how many ticks from now the bridge takes it.
        place = self.written + 1 - taken
        if place > MAX_LEAD_FRAMES:
            self.dropped += 1
            return
        self.playout.write(frame)
        self.written += 1
        self.lead = max(place, 1)

    def _new_utterances(self) -> None:
        """Utterances the driver just started: their times move by the lead; DTMF is sent."""
        driver = self.driver
        while self._seen_utterances < len(driver.utterances):
            u = driver.utterances[self._seen_utterances]
            self._seen_utterances += 1
            if u.source.startswith(DTMF_SOURCE):
                # Keys go out as RTP events from the next frame on, not behind the lead; the
                # answer is timed from the first one.
                u.speech_start = u.speech_end = driver.now + driver.period
                self._send_dtmf(u.source.removeprefix(DTMF_SOURCE))
                continue
            shift = self.lead * driver.period
            u.sent_start += shift
            u.sent_end += shift
            if u.speech_start is not None:
                u.speech_start += shift
            if u.speech_end is not None:
                u.speech_end += shift

    def _send_dtmf(self, digits: str) -> None:
        self._event("dtmf", {"digits": digits})
        self._command(self.phone.send_dtmf, f"DTMF {digits} not sent", digits)

    def on_transfer_request(self, target: str) -> None:
        self.driver.transferred = True
        self.driver.transfer_target = target
        self._event("refer", {"target": target, "answered": 603})

    def on_ended(self, status: int, reason: str, confirmed: bool, by_us: bool) -> None:
        driver = self.driver
        self._event("sip", {"state": "DISCONNECTED", "status": status, "reason": reason})
        if not confirmed and not by_us:
            driver.end("connect_failed")
            driver.error(f"the robot did not answer the call: {status} {reason}")
        elif not by_us and not driver.ended:
            driver.robot_hung_up = True
            driver.end("robot_hung_up")
        if not self.ended.done():
            self.ended.set_result(None)

    # -- ours ---------------------------------------------------------------------------------
    def hang_up(self) -> None:
        if self.handle is None or self._hanging_up:
            return
        self._hanging_up = True
        self._command(self.phone.hang_up, "hangup failed")

    def _command(self, command: Callable[..., Awaitable[None]], what: str, *args: Any) -> None:
        """Runs one of the phone's commands on this call; a failure is one of the call's errors."""
        assert self.handle is not None

        async def run() -> None:
            try:
                await command(self.handle, *args)
            except Exception as exc:
                self.driver.error(f"{what}: {exc}")

        task = self.loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.driver.events.append(
            EventReport(type=kind, t_ms=ms(self.ticks * self.driver.period), data=data)
        )

    async def rtp_stats(self) -> dict[str, Any]:
        if self.handle is None:
            return {}
        try:
            return await self.phone.rtp_stats(self.handle)
        except RuntimeError:
            return {}


async def play_sip_script(
    phone: SipPhone,
    target: SipTarget,
    script: tuple[ScriptItem, ...],
    options: CallOptions,
    *,
    user: str = DEFAULT_USER,
    hangup_after_s: float | None = None,
    record: Path | str | None = None,
    keep_audio: bool = True,
) -> CallResult:
    """One call on a started `SipPhone`; everything that goes wrong is in the result's errors."""
    options = replace(options, marks="none", prebuffer=False)  # what a SIP phone does
    driver = CallDriver(script, options, keep_audio=keep_audio or record is not None)
    loop = asyncio.get_running_loop()
    started_at = datetime.now(UTC)
    live = _SipLiveCall(driver, hangup_after_s, phone, loop.time())
    call_id = ""
    try:
        async with asyncio.timeout(options.timeout_s):
            live.handle, call_id = await phone.dial(target.uri, user, live, live.playout)
            await asyncio.shield(live.ended)
    except TimeoutError:
        driver.end("timeout")
        driver.error(f"call did not finish within {options.timeout_s:g} s")
    except OSError as exc:
        driver.end("connect_failed")
        driver.error(str(exc))
    except Exception as exc:  # a simulator bug ends this call only, never its neighbours
        log.exception("simulated SIP call %s failed", call_id)
        driver.end("error")
        driver.error(f"simulator error: {exc!r}")
    if live.handle is not None and not live.ended.done():
        live.hang_up()
        try:
            async with asyncio.timeout(END_WAIT_S):
                await asyncio.shield(live.ended)
        except TimeoutError:
            driver.error(f"the call was still up {END_WAIT_S:g} s after our BYE")
    if live.media_started:
        live._event("rtp", await live.rtp_stats())
    metadata = {
        "from": user,
        "to": target.user,
        "uri": target.uri,
        "transport": target.transport,
        "sip_call_id": call_id,
        "codec": live.codec,
        "setup_ms": live.setup_ms,
    }
    result = driver.result(
        call_id=call_id or "-",
        url=target.uri,
        metadata=metadata,
        started_at=started_at,
        duration=live.ticks * driver.period,
        dropped_frames=live.dropped,
        sim_lag_max=live.lag_max,
    )
    # Robot audio reaches the caller through its jitter buffer, so its arrival has no jitter to
    # measure; the network's is in the "rtp" event (RTCP's receive jitter).
    result.jitter_samples_ms = []
    result.quality.jitter_ms = Stats()
    if live.heard is not None:
        # Every frame as heard (the gate only decides what counts as an answer), on the
        # driver's grid; the caller's audio moved by the lead it went out with.
        result.robot_heard = driver.silence + b"".join(live.heard)
        result.caller_audio = driver.silence * LEAD_FRAMES + result.caller_audio
    if record is not None:
        write_stereo_wav(record, result.caller_audio, result.robot_heard)
    return result


async def run_sip_calls(
    uri: str,
    steps: list[SipStep],
    n: int = 1,
    *,
    options: CallOptions | None = None,
    user: str = DEFAULT_USER,
    codecs: tuple[str, ...] = ("PCMA", "PCMU"),
    hangup_after_s: float | None = None,
    record: Path | str | None = None,
    keep_audio: bool = False,
    ramp_s: float = 0.0,
) -> MultiResult:
    """`n` calls at once (each with its own Call-ID), spread over `ramp_s`, on the process's
    one SIP stack (`shared_phone`: simultaneous `run_sip_calls` share it).

    Raises ValueError (a bad URI, step or codec) and WavError before dialling; OSError when the
    SIP stack cannot start.
    """
    if n < 1:
        raise ValueError(f"the number of calls must be at least 1 (got {n})")
    options = options or CallOptions()
    if options.frame_ms != FRAME_MS:
        raise ValueError(f"SIP media runs in {FRAME_MS} ms frames (--frame-ms {options.frame_ms})")
    target = SipTarget.parse(uri)
    script = compile_dtmf_script(steps, FRAME_MS)
    loop = asyncio.get_running_loop()
    async with shared_phone(target.local_address(), list(codecs)) as phone:
        started = loop.time()

        async def one(i: int) -> CallResult:
            if ramp_s > 0:
                await asyncio.sleep(ramp_s * i / n)
            return await play_sip_script(
                phone,
                target,
                script,
                options,
                user=user,
                hangup_after_s=hangup_after_s,
                record=None if record is None else (record if n == 1 else numbered(record, i)),
                keep_audio=keep_audio or n == 1,
            )

        calls = await asyncio.gather(*(one(i) for i in range(n)))
    lags = [c.sim_lag_max_ms / 1000.0 for c in calls]
    return MultiResult.of(list(calls), loop.time() - started, lags)


async def run_sip_call(uri: str, steps: list[SipStep], **kwargs: Any) -> CallResult:
    """One call (see `run_sip_calls`); keeps the audio."""
    multi = await run_sip_calls(uri, steps, 1, keep_audio=True, **kwargs)
    return multi.calls[0]
