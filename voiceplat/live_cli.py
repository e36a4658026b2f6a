"""`voiceplat calls [--live] [--redis URL]`: every robot process's calls in a terminal.

Robot processes with REDIS_URL publish their calls on the Redis channel `call_events` and keep a
`call:<id>` hash per call (storage/redis.py); the web service's live page reads the same (and
this reuses its reader, web/live_source.py). `voiceplat calls` prints the calls in progress now;
with `--live` it then prints one line per event as the calls go, until Ctrl-C:

    14:35:01 robot_a/abc1 started  +79161234567 -> 100 (sip)
    14:35:03 robot_a/abc1 #1 user: Хочу записаться
    14:35:04 robot_a/abc1 #2 robot: Конечно. На какой день? (v2v 812 ms)
    14:35:09 robot_a/abc1 ended    completed caller_hangup, 8.1 s, 4 turns

It subscribes before it reads the calls in progress, so no event falls between the two; Redis
pub/sub keeps nothing for a subscriber that is away, so after a lost connection it says so,
connects again and prints the calls in progress again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from voiceplat.privacy.masking import mask_number
from voiceplat.privacy.stores import safe_url

if TYPE_CHECKING:
    from voiceplat.web.live_source import RedisLive

TEXT_CHARS = 100
RECONNECT_S = (1.0, 2.0, 5.0)


def add_calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--live", action="store_true", help="keep printing the calls' events until Ctrl-C"
    )
    parser.add_argument(
        "--redis", metavar="URL", help="the robots' Redis (default: REDIS_URL from env / ./.env)"
    )
    parser.add_argument(
        "--mask-callers", action="store_true", help="print caller numbers masked: +7***67"
    )


def run_calls_command(args: argparse.Namespace) -> int:
    from voiceplat.config_sources import read_env_files

    url = args.redis or read_env_files(Path(".")).get("REDIS_URL")
    if not url:
        print("no Redis: give --redis URL or set REDIS_URL", file=sys.stderr)
        return 1
    view = LiveView(sys.stdout, mask_callers=args.mask_callers)
    try:
        return asyncio.run(watch(url, view, follow=args.live))
    except KeyboardInterrupt:
        return 0


def _short(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _clock(at: Any) -> str:
    """`2026-12-02T14:35:01.123+00:00` -> `14:35:01` (the stores' times are UTC)."""
    text = str(at or "")
    return text[11:19] if len(text) >= 19 else "--:--:--"


class LiveView:
    """Turns calls and events into terminal lines."""

    def __init__(self, out: TextIO, *, mask_callers: bool = False) -> None:
        self.out = out
        self.connected = False
        """Whether Redis was reached once (a later failure is retried, a first one is not)."""
        self.caller: Callable[[Any], str] = (
            (lambda c: mask_number(str(c)) if c else "?") if mask_callers else (lambda c: c or "?")
        )

    def print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def calls(self, calls: list[dict[str, Any]]) -> None:
        self.print(f"{len(calls)} call(s) in progress")
        for live in calls:
            call = live["call"]
            turns = live.get("turns") or []
            last = f": {turns[-1].get('role')}: {_short(turns[-1].get('text'))}" if turns else ""
            self.print(
                f"  {call.get('robot')}/{call.get('call_id')} since {_clock(call.get('started_at'))}"
                f" {self.caller(call.get('caller'))} ({call.get('source')}), "
                f"{len(turns)} turn(s){last}"
            )

    def event(self, event: dict[str, Any]) -> None:
        head = f"{_clock(event.get('at'))} {event.get('robot')}/{event.get('call_id')}"
        kind = event.get("type")
        data = event.get("data") or {}
        if kind == "call_started":
            self.print(
                f"{head} started  {self.caller(data.get('caller'))} -> "
                f"{data.get('callee') or '?'} ({data.get('source')})"
            )
        elif kind == "turn":
            turn = event.get("turn") or {}
            notes = []
            if turn.get("v2v_ms") is not None:
                notes.append(f"v2v {turn['v2v_ms']:.0f} ms")
            if turn.get("interrupted"):
                notes.append(f"cut by the caller after: {_short(turn.get('heard_text'))}")
            note = f" ({'; '.join(notes)})" if notes else ""
            self.print(
                f"{head} #{turn.get('idx')} {turn.get('role')}: {_short(turn.get('text'))}{note}"
            )
        elif kind == "barge_in":
            self.print(f"{head} barge-in")
        elif kind == "call_ended":
            call = event.get("call") or {}
            duration = call.get("duration_sec")
            seconds = f", {duration:.1f} s" if isinstance(duration, int | float) else ""
            self.print(
                f"{head} ended    {call.get('status')} {call.get('end_reason')}{seconds}, "
                f"{call.get('turns')} turn(s)"
            )
        elif kind == "call_updated":
            changes = ", ".join(f"{k}: {_short(v)}" for k, v in data.items() if k != "replayed")
            self.print(f"{head} updated  {changes}")


async def watch(url: str, view: LiveView, *, follow: bool) -> int:
    """Prints the calls in progress and, when following, their events; 1 when Redis cannot be
    reached at first (a lost connection later is retried)."""
    from voiceplat.web.live_source import RedisLive

    source = RedisLive(url)
    try:
        if not follow:
            calls = await source.calls()
            if source.errors:
                view.print(f"Redis {safe_url(url)}: {source.errors['redis']}")
                return 1
            view.calls(calls)
            return 0
        return await _follow(source, url, view)
    finally:
        await source.aclose()


async def _follow(source: RedisLive, url: str, view: LiveView) -> int:
    failures = 0
    while True:
        try:
            events = await source.subscribe()
        except Exception as exc:  # redis-py raises its own and OS errors: all mean "not now"
            if not view.connected:
                view.print(f"Redis {safe_url(url)}: {type(exc).__name__}: {exc}")
                return 1
            await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
            failures += 1
            continue
        view.connected = True
        failures = 0
        view.calls(await source.calls())
        view.print(f"following call_events on {safe_url(url)} (Ctrl-C to stop)")
        try:
            async for event in events:
                view.event(event)
        except Exception as exc:
            view.print(f"lost Redis ({type(exc).__name__}: {exc}); connecting again")
