"""`voiceplat call <scheme>://...` for the simulated PBXs of `peers.SCHEMES`."""

from __future__ import annotations

import argparse

from voiceplat.simulator.common import run_calls_command
from voiceplat.simulator.peers.runner import run_peer_calls


def run_peer_command(args: argparse.Namespace) -> int:
    """The arguments of `simulator.cli.add_call_arguments`; exit codes as `run_call_command`'s.
    The PBX's own playout rules apply (marks, no pre-buffer), not the ws:// peer options."""
    return run_calls_command(
        args,
        lambda steps, options: run_peer_calls(
            args.url,
            steps,
            args.calls,
            options=options,
            metadata=args.metadata,
            hangup_after_s=args.hangup_after,
            record=args.record,
            ramp_s=args.ramp,
        ),
    )
