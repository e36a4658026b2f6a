"""`voiceplat call <scheme>://...` for the simulated PBXs of `peers.SCHEMES`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from voiceplat.audio.wav import WavError
from voiceplat.simulator.driver import CallOptions
from voiceplat.simulator.peers.base import Dtmf, PeerStep
from voiceplat.simulator.peers.runner import run_peer_calls
from voiceplat.simulator.report_text import format_call, format_multi


def run_peer_command(args: argparse.Namespace) -> int:
    """The arguments of `simulator.cli.add_call_arguments`; exit codes as `run_call_command`'s.
    The PBX's own playout rules apply (marks, no pre-buffer), not the ws:// peer options."""
    from voiceplat.simulator.cli import steps_from_args

    try:
        steps: list[PeerStep] = [
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
        multi = asyncio.run(
            run_peer_calls(
                args.url,
                steps,
                args.calls,
                options=options,
                metadata=args.metadata,
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
