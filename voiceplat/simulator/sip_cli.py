"""`voiceplat call sip:...`: the command line's SIP calls (see `sip_caller.py`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from voiceplat.audio.wav import WavError
from voiceplat.simulator.cli import steps_from_args
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.report_text import format_call, format_multi
from voiceplat.simulator.sip_caller import DEFAULT_USER, Dtmf, SipStep, run_sip_calls


def run_sip_command(args: argparse.Namespace) -> int:
    """`voiceplat call sip:...` (the arguments of `cli.add_call_arguments`); exit codes as
    `cli.run_call_command`'s."""
    try:
        steps: list[SipStep] = [
            Dtmf(value) if kind == "dtmf" else steps_from_args([(kind, value)])[0]
            for kind, value in args.steps
        ]
        options = CallOptions(
            frame_ms=args.frame_ms,
            settle_s=args.settle,
            answer_timeout_s=args.answer_timeout,
            barge_in_after_s=args.barge_in_after,
            timeout_s=args.timeout,
            echo_db=args.echo_db,
            echo_ms=args.echo_ms,
        )
        codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
        multi = asyncio.run(
            run_sip_calls(
                args.url,
                steps,
                args.calls,
                options=options,
                user=str(args.metadata.get("from") or DEFAULT_USER),
                codecs=codecs,
                hangup_after_s=args.hangup_after,
                record=args.record,
                ramp_s=args.ramp,
            )
        )
    except (WavError, ValueError, OSError) as exc:
        print(f"voiceplat call: {exc}", file=sys.stderr)
        return 2
    if args.calls == 1:
        result = multi.calls[0]
        print(result.model_dump_json(indent=2) if args.json else format_call(result))
        return 0 if result.ok else 1
    print(multi.model_dump_json(indent=2) if args.json else format_multi(multi))
    return 0 if multi.ok else 1
