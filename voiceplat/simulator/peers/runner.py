"""One or many simulated calls through a protocol's peer (`peers/base.py`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidURI

from voiceplat.audio.wav import write_stereo_wav
from voiceplat.simulator.common import compile_dtmf_script, end_connection_error, end_timed_out
from voiceplat.simulator.driver import CallDriver, CallOptions
from voiceplat.simulator.multi import numbered
from voiceplat.simulator.peers import peer_module
from voiceplat.simulator.peers.base import CallInfo, PeerCall, PeerStep
from voiceplat.simulator.peers.transports import TransportError, WebSocketTransport
from voiceplat.simulator.report import CallResult, MultiResult
from voiceplat.simulator.script import ScriptItem
from voiceplat.simulator.ticker import get_ticker

log = logging.getLogger(__name__)

DEFAULT_METADATA = {"from": "+79990000000", "to": "88000000000"}


async def play_peer_call(
    url: str,
    script: tuple[ScriptItem, ...],
    options: CallOptions,
    *,
    metadata: dict[str, Any] | None = None,
    hangup_after_s: float | None = None,
    record: Path | str | None = None,
    keep_audio: bool = True,
    headers: dict[str, str] | None = None,
) -> CallResult:
    """One call to `url` (a scheme of `peers.SCHEMES`); what goes wrong is in the result's
    errors. `headers`: sent with a WebSocket peer's handshake, over the URL's own (credentials:
    `voiceplat call --auth / --token`). Raises ValueError for a URL no peer handles, or headers
    for a peer without a handshake."""
    meta: dict[str, Any] = {"callId": str(uuid.uuid4()), **DEFAULT_METADATA, **(metadata or {})}
    call = CallInfo(str(meta["callId"]), str(meta["from"]), str(meta["to"]), meta)
    codec, transport = peer_module(url).make_peer(url, call)
    if headers:
        _add_headers(transport, headers, url)
    options = replace(options, marks=codec.marks, prebuffer=codec.prebuffer)
    driver = CallDriver(script, options, keep_audio=keep_audio or record is not None)
    ticker = get_ticker(options.frame_ms)
    loop = asyncio.get_running_loop()
    started_at = datetime.now(UTC)
    t_connect = loop.time()
    live: PeerCall | None = None
    try:
        async with asyncio.timeout(options.timeout_s):
            await transport.open()
            live = PeerCall(codec, transport, driver, hangup_after_s=hangup_after_s)
            live.send(codec.start(call))
            live.t0 = ticker.add(live)
            try:
                while (data := await transport.receive()) is not None:
                    live.on_data(data)
                    if driver.end_reason is not None:
                        break  # the robot hung up or transferred: we hang up too
            except TransportError as exc:
                if not driver.ended:
                    driver.error(str(exc))
            finally:
                ticker.remove(live)
            if not driver.ended:
                driver.robot_hung_up = True  # closed without the protocol's hangup
                driver.end("robot_closed")
            live.hang_up(by_caller=False)
            if live.closing is not None:
                await live.closing
    except TimeoutError:
        end_timed_out(driver, url, connected=live is not None, timeout_s=options.timeout_s)
    except (OSError, InvalidURI, InvalidHandshake) as exc:
        end_connection_error(driver, url, exc, connected=live is not None)
    except Exception as exc:  # a simulator bug ends this call only, never its neighbours
        log.exception("simulated call %s failed", call.call_id)
        driver.end("error")
        driver.error(f"simulator error: {exc!r}")
    finally:
        if live is not None:
            ticker.remove(live)
    t0 = live.t0 if live is not None else t_connect
    result = driver.result(
        call_id=call.call_id,
        url=url,
        metadata=meta,
        started_at=started_at,
        duration=max(0.0, loop.time() - t0),
        dropped_frames=live.dropped if live is not None else 0,
        sim_lag_max=live.lag_max if live is not None else 0.0,
    )
    if record is not None:
        write_stereo_wav(record, result.caller_audio, result.robot_heard)
    return result


def _add_headers(transport: object, headers: dict[str, str], url: str) -> None:
    # A peer's transport is a WebSocket, or wraps one as `.ws` (audio_stream's: plus its ESL).
    ws = transport if isinstance(transport, WebSocketTransport) else getattr(transport, "ws", None)
    if not isinstance(ws, WebSocketTransport):
        raise ValueError(f"{url.partition('://')[0]}:// has no handshake to carry credentials")
    ws.headers = {**ws.headers, **headers}


async def run_peer_call(
    url: str,
    steps: list[PeerStep],
    *,
    options: CallOptions | None = None,
    **kwargs: Any,
) -> CallResult:
    """One call with the script `steps` (see `play_peer_call` for `kwargs`)."""
    options = options or CallOptions()
    script = compile_dtmf_script(steps, options.frame_ms)
    return await play_peer_call(url, script, options, **kwargs)


async def run_peer_calls(
    url: str,
    steps: list[PeerStep],
    n: int,
    *,
    options: CallOptions | None = None,
    ramp_s: float = 0.0,
    record: Path | str | None = None,
    keep_audio: bool = False,
    **kwargs: Any,
) -> MultiResult:
    """`n` calls at once (each with its own callId), spread over `ramp_s`."""
    if n < 1:
        raise ValueError(f"the number of calls must be at least 1 (got {n})")
    options = options or CallOptions()
    script = compile_dtmf_script(steps, options.frame_ms)
    peer_module(url)  # a bad URL fails before any call
    ticker = get_ticker(options.frame_ms)
    first_lag = len(ticker.lags)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(i: int) -> CallResult:
        if ramp_s > 0:
            await asyncio.sleep(ramp_s * i / n)
        return await play_peer_call(
            url,
            script,
            options,
            record=None if record is None else (record if n == 1 else numbered(record, i)),
            keep_audio=keep_audio or n == 1,
            **kwargs,
        )

    calls = await asyncio.gather(*(one(i) for i in range(n)))
    return MultiResult.of(list(calls), loop.time() - started, ticker.lags[first_lag:])
