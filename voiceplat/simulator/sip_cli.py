"""`voiceplat call sip:...`: the command line's SIP calls (see `sip_caller.py`)."""

from __future__ import annotations

import argparse

from voiceplat.simulator.common import run_calls_command
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.report import MultiResult
from voiceplat.simulator.sip_caller import DEFAULT_USER, SipStep, run_sip_calls


def run_sip_command(args: argparse.Namespace) -> int:
    """`voiceplat call sip:...` (the arguments of `cli.add_call_arguments`); exit codes as
    `cli.run_call_command`'s."""

    async def calls(steps: list[SipStep], options: CallOptions) -> MultiResult:
        codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
        return await run_sip_calls(
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

    return run_calls_command(args, calls)
