"""What the simulator's callers share: `Dtmf` steps and their script (SIP and PBX peers), how a
call that could not connect or finish ends (WebSocket and PBX peers), and `voiceplat call`'s
options, run and output (SIP and PBX peers)."""

from __future__ import annotations

import argparse
import asyncio
import string
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from voiceplat.audio.pcm import frame_bytes
from voiceplat.audio.wav import WavError
from voiceplat.simulator.driver import CallDriver, CallOptions
from voiceplat.simulator.report import CallResult, MultiResult
from voiceplat.simulator.report_text import format_call, format_multi
from voiceplat.simulator.script import Clip, ScriptItem, Step, compile_script

DTMF_DIGITS = frozenset(string.digits + "*#ABCD")
DTMF_SOURCE = "dtmf "
"""The source of a DTMF step's placeholder utterance in the report: 'dtmf 12#'."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """Press `digits` once the robot has answered and gone quiet (as `Say` waits): RFC 4733
    events over SIP, the protocol's own message to a PBX peer."""

    digits: str

    def __post_init__(self) -> None:
        bad = sorted(set(self.digits.upper()) - DTMF_DIGITS)
        if not self.digits or bad:
            raise ValueError(f"--dtmf {self.digits!r}: keys are 0-9, *, #, A-D")


DtmfStep = Step | Dtmf


def compile_dtmf_script(steps: list[DtmfStep], frame_ms: int = 20) -> tuple[ScriptItem, ...]:
    """The driver's script; a `Dtmf` step is a "say" of one silent frame (it waits as a say
    does), which the caller recognises by its source (`DTMF_SOURCE`) and sends as keys."""
    items: list[ScriptItem] = []
    silence = bytes(frame_bytes(frame_ms))
    for step in steps:
        if isinstance(step, Dtmf):
            clip = Clip(DTMF_SOURCE + step.digits.upper(), (silence,), None, None)
            items.append(ScriptItem("say", clip))
        else:
            items.extend(compile_script([step], frame_ms))
    return tuple(items)


def dtmf_steps_from_args(pairs: list[tuple[str, Any]]) -> list[DtmfStep]:
    """`cli.steps_from_args`, and `Dtmf` for the --dtmf arguments."""
    from voiceplat.simulator.cli import steps_from_args  # cli imports the callers lazily too

    return [
        Dtmf(value) if kind == "dtmf" else steps_from_args([(kind, value)])[0]
        for kind, value in pairs
    ]


def end_timed_out(driver: CallDriver, url: str, *, connected: bool, timeout_s: float) -> None:
    """The call's time ran out: while connecting, or before the call finished."""
    if not connected:
        driver.end("connect_failed")
        driver.error(f"cannot connect to {url}: timed out")
    else:
        driver.end("timeout")
        driver.error(f"call did not finish within {timeout_s:g} s")


def end_connection_error(driver: CallDriver, url: str, exc: Exception, *, connected: bool) -> None:
    """The connection failed (OSError, a bad URI or handshake): before or after it was made."""
    driver.end("connect_failed" if not connected else "error")
    driver.error(f"{'cannot connect to' if not connected else 'connection to'} {url}: {exc}")


def call_options(args: argparse.Namespace) -> CallOptions:
    """The `CallOptions` of `cli.add_call_arguments`'s arguments."""
    return CallOptions(
        frame_ms=args.frame_ms,
        settle_s=args.settle,
        answer_timeout_s=args.answer_timeout,
        barge_in_after_s=args.barge_in_after,
        timeout_s=args.timeout,
        echo_db=args.echo_db,
        echo_ms=args.echo_ms,
    )


def print_calls(args: argparse.Namespace, multi: MultiResult) -> int:
    """Prints one call's result or all calls' (as JSON with --json); 0 when all were ok, else 1."""
    if args.calls == 1:
        result: CallResult = multi.calls[0]
        print(result.model_dump_json(indent=2) if args.json else format_call(result))
        return 0 if result.ok else 1
    print(multi.model_dump_json(indent=2) if args.json else format_multi(multi))
    return 0 if multi.ok else 1


def run_calls_command(
    args: argparse.Namespace,
    calls: Callable[[list[DtmfStep], CallOptions], Coroutine[Any, Any, MultiResult]],
) -> int:
    """Runs `calls(steps, options)` of `cli.add_call_arguments`'s arguments and prints the result;
    exit codes as `cli.run_call_command`'s: 0 all ok, 1 a call failed, 2 bad input."""
    try:
        multi = asyncio.run(calls(dtmf_steps_from_args(args.steps), call_options(args)))
    except (WavError, ValueError, OSError) as exc:
        print(f"voiceplat call: {exc}", file=sys.stderr)
        return 2
    return print_calls(args, multi)
