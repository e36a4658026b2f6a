"""`voiceplat call <scheme>://...` for the simulated PBXs of `peers.SCHEMES`."""

from __future__ import annotations

import argparse
import base64
import os
import sys

from voiceplat.simulator.common import run_calls_command
from voiceplat.simulator.peers.runner import run_peer_calls


def credential_headers(auth: str | None, token: str | None) -> dict[str, str]:
    """`--auth USER:PASSWORD` as Basic auth, `--token T` as `Authorization: Bearer T` (a PBX's
    WebSocket has no ?token= of the robot's: twilio+ws:// takes ?token= as customParameters)."""
    if auth is not None:
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    if token is not None:
        return {"Authorization": f"Bearer {token}"}
    return {}


def run_peer_command(args: argparse.Namespace) -> int:
    """The arguments of `simulator.cli.add_call_arguments`; exit codes as `run_call_command`'s.
    The PBX's own playout rules apply (marks, no pre-buffer), not the ws:// peer options."""
    auth, token = getattr(args, "auth", None), getattr(args, "token", None)
    if auth is not None and token is not None:
        print(
            "voiceplat call: --auth and --token: one Authorization header, pick one",
            file=sys.stderr,
        )
        return 2
    ca = getattr(args, "ca", None)
    if ca is not None:
        if not ca.is_file():
            print(f"voiceplat call: --ca: {ca} is not a file", file=sys.stderr)
            return 2
        os.environ["SSL_CERT_FILE"] = str(ca)  # as for wss:// (simulator/cli.py)
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
            headers=credential_headers(auth, token),
        ),
    )
