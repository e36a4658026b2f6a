"""Many simultaneous simulated calls in one process, sharing one frame clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from voiceplat.simulator.caller import play_script
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.peer_playout import MarkRules
from voiceplat.simulator.report import MultiResult
from voiceplat.simulator.script import Step, compile_script
from voiceplat.simulator.ticker import get_ticker


def numbered(path: Path | str, i: int) -> Path:
    """call.wav -> call_0.wav, call_1.wav, ..."""
    path = Path(path)
    return path.with_name(f"{path.stem}_{i}{path.suffix}")


async def run_calls(
    url: str,
    steps: list[Step],
    n: int,
    *,
    metadata: dict[str, Any] | None = None,
    frame_ms: int = 20,
    settle_s: float = 0.6,
    answer_timeout_s: float = 15.0,
    barge_in_after_s: float = 0.5,
    timeout_s: float = 120.0,
    record: Path | str | None = None,
    keep_audio: bool = False,
    ramp_s: float = 0.0,
    marks: MarkRules = "module",
    prebuffer: bool = True,
    hangup_on_disconnect: bool = False,
    echo_db: float | None = None,
    echo_ms: float = 120.0,
) -> MultiResult:
    """Places `n` calls at once (each with its own callId), spread evenly over `ramp_s`.

    Audio and per-chunk lists are kept only with `keep_audio` (500 calls of them add up);
    `record` writes one file per call, numbered. The script's audio is loaded once for all.
    """
    if n < 1:
        raise ValueError(f"the number of calls must be at least 1 (got {n})")
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
    loop = asyncio.get_running_loop()
    ticker = get_ticker(frame_ms)
    first_lag = len(ticker.lags)
    started = loop.time()

    async def one(i: int) -> Any:
        if ramp_s > 0:
            await asyncio.sleep(ramp_s * i / n)
        return await play_script(
            url,
            script,
            options,
            metadata=metadata,
            record=None if record is None else numbered(record, i),
            keep_audio=keep_audio,
        )

    calls = await asyncio.gather(*(one(i) for i in range(n)))
    wall = loop.time() - started
    return MultiResult.of(list(calls), wall, ticker.lags[first_lag:])
