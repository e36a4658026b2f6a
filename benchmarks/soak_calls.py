"""The soak's callers: a steady number of simulated calls, each of a kind drawn from a mix.

- `normal`: two questions, each answered; the caller hangs up.
- `barge_in`: a question, then the caller talks over the answer (the robot must stop).
- `hangup`: the caller hangs up cleanly during the greeting.
- `abrupt`: the caller's TCP connection is reset mid-call (SO_LINGER 0, then close: an RST, no
  WebSocket close, as when a media server dies), after the greeting started and some talk.

Every call has its own callId, so the soak can look for its record in every store at the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from websockets.asyncio.client import connect

from voiceplat.simulator.caller import DEFAULT_METADATA, MAX_MESSAGE, SUBPROTOCOL, play_script
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.script import BargeIn, Pause, Say, ScriptItem, compile_script

Kind = Literal["normal", "barge_in", "hangup", "abrupt"]
KINDS: tuple[Kind, ...] = ("normal", "barge_in", "hangup", "abrupt")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
QUESTION = FIXTURES / "ru_question.wav"
SHORT = FIXTURES / "ru_da.wav"
FRAME_MS = 20
OPTIONS = CallOptions(frame_ms=FRAME_MS, answer_timeout_s=15.0, timeout_s=90.0)
MAX_ERRORS_KEPT = 50


def parse_mix(text: str) -> dict[Kind, float]:
    """ "normal=60,barge_in=20,abrupt=15,hangup=5" -> weights; unknown kinds are an error."""
    mix: dict[Kind, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise ValueError(f"unknown call kind {name!r} (known: {', '.join(KINDS)})")
        mix[name] = float(weight or 1)
    if not any(w > 0 for w in mix.values()):
        raise ValueError(f"the mix {text!r} gives no call kind a weight")
    return mix


@dataclass
class Tally:
    """What the callers did; `connected` are the callIds the robot must have a record of."""

    placed: Counter[str] = field(default_factory=Counter)
    end_reasons: Counter[str] = field(default_factory=Counter)
    connected: dict[str, str] = field(default_factory=dict)
    """callId -> kind, for every call whose metadata reached the robot."""
    failed: int = 0
    """Calls that went wrong on the caller's side (no answer, refused, lost connection...)."""
    errors: list[str] = field(default_factory=list)
    in_flight: int = 0

    @property
    def done(self) -> int:
        return sum(self.placed.values()) - self.in_flight

    def error(self, call_id: str, kind: str, text: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{kind} {call_id}: {text}")


class Scripts:
    def __init__(self, *, quick: bool = False) -> None:
        question = SHORT if quick else QUESTION  # quick: the test's mini soak
        self.by_kind: dict[Kind, tuple[ScriptItem, ...]] = {
            "normal": compile_script([Say(question), Say(SHORT)], FRAME_MS),
            "barge_in": compile_script([Say(question), BargeIn(question)], FRAME_MS),
            "hangup": compile_script([Pause(1.0)], FRAME_MS),
        }
        self.talk = compile_script([Say(QUESTION)], FRAME_MS)[0].clip.frames


async def scripted_call(url: str, kind: Kind, scripts: Scripts, tally: Tally) -> bool:
    """One call of `kind`; whether it reached the robot."""
    call_id = str(uuid.uuid4())
    result = await play_script(
        url, scripts.by_kind[kind], OPTIONS, metadata={"callId": call_id}, keep_audio=False
    )
    tally.end_reasons[f"{kind}:{result.end_reason}"] += 1
    if result.frames_sent > 0:
        tally.connected[call_id] = kind
    if result.errors:
        tally.error(call_id, kind, "; ".join(result.errors))
    return result.frames_sent > 0


def reset(ws: object) -> None:
    """Closes the connection with a TCP RST: no close frame, no FIN."""
    transport = ws.transport  # type: ignore[attr-defined]
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def abrupt_call(url: str, scripts: Scripts, tally: Tally, talk_s: float) -> bool:
    """Waits for the greeting's first audio (the session exists), talks `talk_s`, resets;
    whether it reached the robot."""
    call_id = str(uuid.uuid4())
    meta = {"callId": call_id, **DEFAULT_METADATA}
    ws = None
    try:
        async with asyncio.timeout(OPTIONS.timeout_s):
            ws = await connect(
                url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                compression=None,
                max_size=MAX_MESSAGE,
                ping_interval=None,
                open_timeout=10.0,
            )
            await ws.send(json.dumps(meta))
            tally.connected[call_id] = "abrupt"
            async for message in ws:
                if isinstance(message, bytes):
                    break
            frames = scripts.talk
            for i in range(int(talk_s * 1000 / FRAME_MS)):
                await ws.send(frames[i % len(frames)])
                await asyncio.sleep(FRAME_MS / 1000)
            tally.end_reasons["abrupt:reset"] += 1
    except Exception as exc:  # the robot should never be the one to fail this call
        tally.error(call_id, "abrupt", f"{type(exc).__name__}: {exc}")
    finally:
        if ws is not None:
            reset(ws)
    return call_id in tally.connected


async def callers(
    url: str,
    concurrency: int,
    until: float,
    mix: dict[Kind, float],
    tally: Tally,
    *,
    ramp_s: float,
    seed: int,
    first: Sequence[Kind] = (),
    quick: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """`concurrency` callers, each placing calls one after another until loop time `until`
    (a call in progress is finished, not cut); caller i's first call is of kind `first[i]`,
    placed whatever the time. `quick`: short caller utterances (the test's mini soak). `stop`
    set: no new call (the robot died)."""
    loop = asyncio.get_running_loop()
    scripts = Scripts(quick=quick)
    kinds = list(mix)
    weights = [mix[k] for k in kinds]

    async def caller(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        await asyncio.sleep(ramp_s * i / concurrency)
        forced = [first[i]] if i < len(first) else []
        while forced or (loop.time() < until and not (stop is not None and stop.is_set())):
            kind = forced.pop() if forced else rng.choices(kinds, weights)[0]
            tally.placed[kind] += 1
            tally.in_flight += 1
            try:
                if kind == "abrupt":
                    reached = await abrupt_call(url, scripts, tally, talk_s=rng.uniform(0.2, 2.5))
                else:
                    reached = await scripted_call(url, kind, scripts, tally)
            finally:
                tally.in_flight -= 1
            if not reached:  # a robot that refuses calls must not make the callers spin
                await asyncio.sleep(1.0)

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
