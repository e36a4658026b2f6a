"""One simulated call over a real WebSocket: FreeSWITCH's side of mod_audio_fork.

The call connects offering the `audio.drachtio.org` subprotocol, sends the metadata TEXT frame,
then streams caller audio in real time from the shared ticker while a reader feeds the robot's
messages to the call's `CallDriver`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    InvalidHandshake,
    InvalidURI,
)
from websockets.protocol import State

from voiceplat.audio.wav import write_stereo_wav
from voiceplat.simulator.common import end_connection_error, end_timed_out
from voiceplat.simulator.driver import CallDriver, CallOptions
from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.report import CallResult
from voiceplat.simulator.script import ScriptItem, Step, compile_script
from voiceplat.simulator.ticker import get_ticker

log = logging.getLogger(__name__)

SUBPROTOCOL = "audio.drachtio.org"
SEND_BUFFER_LIMIT = 16 * 1024
"""Caller frames queued in the socket beyond this are dropped, as mod_audio_fork drops packets
when the robot does not read: the shared ticker must never wait on one slow robot."""
MAX_MESSAGE = 16 * 1024 * 1024

DEFAULT_METADATA = {"from": "+79990000000", "to": "88000000000", "source": "simulator"}


class _LiveCall:
    """Glue between one open websocket and its driver; served by the shared ticker."""

    def __init__(self, ws: ClientConnection, driver: CallDriver) -> None:
        self.ws = ws
        self.driver = driver
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.dropped = 0
        self.lag_max = 0.0
        self._closing: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self.loop.time() - self.t0

    def on_tick(self, k: int, lag_s: float) -> None:
        if lag_s > self.lag_max:
            self.lag_max = lag_s
        frame, replies = self.driver.on_tick(k)
        for reply in replies:
            self._send(reply.encode(), text=True)
        if frame is not None:
            self._send(frame, text=False)
        elif self.driver.ended:
            self.hang_up()

    def on_tick_error(self, exc: Exception) -> None:
        self.driver.error(f"simulator error: {exc!r}")
        self.hang_up()

    def on_message(self, message: str | bytes) -> None:
        now = self.now()
        if isinstance(message, bytes):
            self.driver.on_binary(message, now)
            return
        for reply in self.driver.on_text(message, now):
            self._send(reply.encode(), text=True)

    def hang_up(self) -> None:
        if self._closing is None:
            self._closing = self.loop.create_task(self.ws.close())

    def _send(self, data: bytes, *, text: bool) -> None:
        # Written straight to the protocol and the transport, not through `await ws.send()`:
        # the ticker serves hundreds of calls per frame and must not await any one of them.
        ws = self.ws
        if ws.protocol.state is not State.OPEN:
            return
        if not text and ws.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            self.dropped += 1
            return
        if text:
            ws.protocol.send_text(data)
        else:
            ws.protocol.send_binary(data)
        ws.send_data()


async def run_call(
    url: str,
    steps: list[Step],
    *,
    metadata: dict[str, Any] | None = None,
    frame_ms: int = 20,
    settle_s: float = 0.6,
    answer_timeout_s: float = 15.0,
    barge_in_after_s: float = 0.5,
    timeout_s: float = 120.0,
    record: Path | str | None = None,
    keep_audio: bool = True,
    marks: MarkRules = "module",
    prebuffer: bool = True,
    hangup_on_disconnect: bool = False,
    echo_db: float | None = None,
    echo_ms: float = 120.0,
) -> CallResult:
    """Places one simulated call to the robot at `url` and reports what happened.

    The peer follows mod_audio_fork's rules unless told otherwise: `marks` ("module", "ideal",
    "none"), `prebuffer`, `hangup_on_disconnect` (see `CallOptions`). `echo_db` (e.g. -20)
    mixes the robot's audio as heard back into the caller's frames `echo_ms` later, through
    mu-law: a speakerphone's echo.

    `keep_audio=False` drops the audio and the per-chunk list from the result (statistics stay),
    for calls by the hundred; `record` keeps the audio regardless, to write the stereo WAV.

    Raises WavError / ValueError for unusable steps before connecting; everything that goes
    wrong on the call itself is reported in `CallResult.errors`.
    """
    options = CallOptions(
        frame_ms=frame_ms,
        settle_s=settle_s,
        answer_timeout_s=answer_timeout_s,
        barge_in_after_s=barge_in_after_s,
        timeout_s=timeout_s,
        marks=marks,
        prebuffer=prebuffer,
        hangup_on_disconnect=hangup_on_disconnect,
        echo_db=echo_db,
        echo_ms=echo_ms,
    )
    script = compile_script(steps, frame_ms)
    return await play_script(
        url, script, options, metadata=metadata, record=record, keep_audio=keep_audio
    )


async def play_script(
    url: str,
    script: tuple[ScriptItem, ...],
    options: CallOptions,
    *,
    metadata: dict[str, Any] | None = None,
    record: Path | str | None = None,
    keep_audio: bool = True,
) -> CallResult:
    """`run_call` with the script already compiled (shared by many calls)."""
    meta: dict[str, Any] = {"callId": str(uuid.uuid4()), **DEFAULT_METADATA, **(metadata or {})}
    driver = CallDriver(script, options, keep_audio=keep_audio or record is not None)
    ticker = get_ticker(options.frame_ms)
    loop = asyncio.get_running_loop()
    started_at = datetime.now(UTC)
    t_connect = loop.time()
    live: _LiveCall | None = None
    try:
        async with asyncio.timeout(options.timeout_s):
            async with connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                compression=None,
                max_size=MAX_MESSAGE,
                ping_interval=None,
                open_timeout=min(10.0, options.timeout_s),
                close_timeout=2.0,
            ) as ws:
                await ws.send(json.dumps(meta))
                live = _LiveCall(ws, driver)
                live.t0 = ticker.add(live)
                try:
                    async for message in ws:
                        live.on_message(message)
                        if driver.end_reason is not None:
                            break  # hung up on the robot's disconnect, or transferred away
                except ConnectionClosedError as exc:
                    if not driver.ended:
                        driver.error(f"connection lost: {exc}")
                finally:
                    ticker.remove(live)
                if not driver.ended:
                    # The robot closed the socket without a disconnect message.
                    driver.robot_hung_up = True
                    driver.end("robot_closed")
    except TimeoutError:
        end_timed_out(driver, url, connected=live is not None, timeout_s=options.timeout_s)
    except (OSError, InvalidURI, InvalidHandshake) as exc:
        end_connection_error(driver, url, exc, connected=live is not None)
    except ConnectionClosed as exc:  # closed while the metadata was being sent
        driver.robot_hung_up = True
        driver.end("robot_closed")
        driver.error(f"the robot closed the connection before the call started: {exc}")
    except Exception as exc:  # a simulator bug ends this call only, never its neighbours
        log.exception("simulated call %s failed", meta["callId"])
        driver.end("error")
        driver.error(f"simulator error: {exc!r}")
    finally:
        if live is not None:
            ticker.remove(live)
    end = loop.time()
    t0 = live.t0 if live is not None else t_connect
    result = driver.result(
        call_id=str(meta["callId"]),
        url=url,
        metadata=meta,
        started_at=started_at,
        duration=max(0.0, end - t0),
        dropped_frames=live.dropped if live is not None else 0,
        sim_lag_max=live.lag_max if live is not None else 0.0,
    )
    if record is not None:
        write_stereo_wav(record, result.caller_audio, result.robot_heard)
    return result
