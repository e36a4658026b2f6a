"""`voiceplat call`: phone a robot without a phone, over its WebSocket or over SIP.

    voiceplat call ws://127.0.0.1:5200/ --say a.wav --pause 1 --say b.wav \
        --barge-in c.wav --record call.wav --json
    voiceplat call sip:robot@127.0.0.1:5060 --say a.wav --dtmf 1 --say b.wav
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from voiceplat.audio.wav import WavError
from voiceplat.simulator.caller import run_call
from voiceplat.simulator.multi import run_calls
from voiceplat.simulator.report_text import format_call, format_multi
from voiceplat.simulator.script import BargeIn, Pause, Say, Step, WaitQuiet


class _StepAction(argparse.Action):
    """Appends (kind, value) to one shared list, so steps keep their command-line order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        steps = list(getattr(namespace, self.dest, None) or [])
        steps.append((self.const, values))
        setattr(namespace, self.dest, steps)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _decibels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a level in dB: {text!r}") from None
    if value > 0:
        raise argparse.ArgumentTypeError(f"an echo is quieter than the robot: {text} > 0 dB")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--metadata is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--metadata must be a JSON object, e.g. '{\"a\": 1}'")
    return value


def with_credentials(url: str, auth: str | None, token: str | None) -> str:
    """The URL the caller connects to: `auth` (user:password) as its user info, which websockets
    sends as Basic auth (as mod_audio_fork does), and `token` as its ?token= query."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if auth is not None:
        user, _, password = auth.partition(":")
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc.rpartition('@')[2]}"
    if token is not None:
        query = "&".join(q for q in (query, f"token={quote(token, safe='')}") if q)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _hide_credentials(result: Any, secret_url: str, shown_url: str) -> None:
    """The report names the URL as typed: never the password or token it was sent with."""
    result.url = shown_url
    result.errors = [line.replace(secret_url, shown_url) for line in result.errors]


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        help="robot WebSocket URL (ws://127.0.0.1:5200/), SIP URI "
        "(sip:robot@127.0.0.1:5060, ;transport=tcp for TCP) or a PBX's streaming protocol "
        "(audiosocket://127.0.0.1:5270, twilio+ws://, asterisk+ws://, audio_stream+ws://)",
    )
    script = parser.add_argument_group("script (steps run in command-line order)")
    step: dict[str, Any] = {"action": _StepAction, "dest": "steps"}
    script.add_argument(
        "--say",
        const="say",
        metavar="WAV",
        help="wait until the robot is quiet (and has answered), then speak this WAV",
        **step,
    )
    script.add_argument(
        "--pause", const="pause", type=_seconds, metavar="S", help="S seconds of silence", **step
    )
    script.add_argument(
        "--barge-in",
        const="barge_in",
        metavar="WAV",
        help="wait until the robot's next answer is heard, then speak this WAV over it",
        **step,
    )
    script.add_argument(
        "--wait-quiet",
        const="wait_quiet",
        type=_seconds,
        metavar="S",
        help="stay silent until the robot has been quiet for S seconds, answer or not "
        "(e.g. after a backchannel it talks on)",
        **step,
    )
    script.add_argument(
        "--dtmf",
        const="dtmf",
        metavar="KEYS",
        help="SIP and PBX protocols: wait as --say does, then press KEYS (0-9 * # A-D); "
        "the report times the robot's answer from the keys",
        **step,
    )
    parser.set_defaults(steps=[])
    parser.add_argument(
        "--metadata",
        type=_metadata,
        default={},
        help='JSON merged into the metadata frame (SIP: its "from" is the From user)',
    )
    parser.add_argument("--frame-ms", type=_positive_int, default=20, help="caller frame size")
    parser.add_argument(
        "--settle", type=_seconds, default=0.6, help="quiet time before --say (s, default 0.6)"
    )
    parser.add_argument(
        "--answer-timeout",
        type=_seconds,
        default=15.0,
        help="longest wait for the robot's answer (s, default 15)",
    )
    parser.add_argument(
        "--barge-in-after",
        type=_seconds,
        default=0.5,
        help="how long the robot talks before --barge-in (s, default 0.5)",
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=120.0, help="limit for the whole call (s)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="WAV",
        help="write a stereo WAV: caller left, robot (as heard) right; numbered with --calls",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    sip = parser.add_argument_group(
        "SIP calls (sip: URIs)",
        "A SIP phone (pjsua2) dials the robot over UDP (TCP with ;transport=tcp), sends the "
        "script as RTP and reports what came out of its jitter buffer; a REFER is reported "
        "and declined (603).",
    )
    sip.add_argument(
        "--hangup-after",
        type=_seconds,
        metavar="S",
        help="hang up S seconds after the robot answers, wherever the script is",
    )
    sip.add_argument(
        "--codecs",
        default="PCMA,PCMU",
        help="codecs offered, in order: PCMA, PCMU, G722 (default PCMA,PCMU)",
    )
    line = parser.add_argument_group("the line")
    line.add_argument(
        "--echo-db",
        type=_decibels,
        metavar="DB",
        help="mix the robot's audio as heard back into the caller's audio at DB (e.g. -20), "
        "through mu-law: a speakerphone's echo (default: none)",
    )
    line.add_argument(
        "--echo-ms",
        type=_milliseconds,
        default=120.0,
        metavar="MS",
        help="delay of that echo (ms, default 120)",
    )
    credentials = parser.add_argument_group(
        "credentials (ws://, wss://: media_auth; twilio+ws://, asterisk+ws://, audio_stream+ws://: "
        "the ingress's own or media_auth)"
    )
    credentials.add_argument(
        "--auth", metavar="USER:PASSWORD", help="Basic auth, as mod_audio_fork sends it"
    )
    credentials.add_argument(
        "--token", help="a token: ?token=<token> for ws://, Authorization: Bearer for the PBX peers"
    )
    credentials.add_argument(
        "--ca",
        type=Path,
        metavar="PEM",
        help="wss://: trust this CA file (a self-signed robot certificate) besides the system's",
    )
    parser.add_argument(
        "--calls", type=_positive_int, default=1, help="place N calls at once (percentiles)"
    )
    parser.add_argument(
        "--ramp", type=_seconds, default=0.0, help="with --calls: spread the starts over S s"
    )
    peer = parser.add_argument_group(
        "the simulated FreeSWITCH (ws:// only; default: mod_audio_fork's own rules, see the README)"
    )
    marks = peer.add_mutually_exclusive_group()
    marks.add_argument(
        "--ideal-marks",
        dest="marks",
        action="store_const",
        const="ideal",
        help="answer each mark once the audio sent before it has played",
    )
    marks.add_argument(
        "--no-marks",
        dest="marks",
        action="store_const",
        const="none",
        help="never answer marks (mod_audio_fork before marks, other ingresses)",
    )
    parser.set_defaults(marks="module")
    peer.add_argument(
        "--no-prebuffer", action="store_true", help="play each audio message when it arrives"
    )
    peer.add_argument(
        "--hangup-on-disconnect",
        action="store_true",
        help="hang up on disconnect and leave on transfer, as freeswitch/ws_bridge.lua does",
    )


def steps_from_args(pairs: list[tuple[str, Any]]) -> list[Step]:
    makers = {"say": Say, "pause": Pause, "barge_in": BargeIn, "wait_quiet": WaitQuiet}
    return [makers[kind](value) for kind, value in pairs]


def run_call_command(args: argparse.Namespace) -> int:
    """Runs `voiceplat call`; 0 when every call completed, 1 when any errored, 2 on bad input."""
    if args.url[:4].lower() == "sip:":
        from voiceplat.simulator.sip_cli import run_sip_command  # pjsua2 only when needed

        return run_sip_command(args)
    from voiceplat.simulator.peers import peer_scheme

    if peer_scheme(args.url) is not None:  # a PBX's streaming protocol: audiosocket://, ...
        from voiceplat.simulator.peers.cli import run_peer_command

        return run_peer_command(args)
    sip_only = [
        option
        for option, used in (
            ("--dtmf", any(kind == "dtmf" for kind, _ in args.steps)),
            ("--hangup-after", getattr(args, "hangup_after", None) is not None),
        )
        if used
    ]
    if sip_only:
        print(f"voiceplat call: {', '.join(sip_only)}: only for sip: URIs", file=sys.stderr)
        return 2
    url = with_credentials(args.url, getattr(args, "auth", None), getattr(args, "token", None))
    if getattr(args, "ca", None) is not None:
        if not args.ca.is_file():
            print(f"voiceplat call: --ca: {args.ca} is not a file", file=sys.stderr)
            return 2
        # Read by the default TLS context websockets makes for wss:// (OpenSSL's own variable).
        os.environ["SSL_CERT_FILE"] = str(args.ca)
    steps = steps_from_args(args.steps)
    options: dict[str, Any] = {
        "metadata": args.metadata,
        "frame_ms": args.frame_ms,
        "settle_s": args.settle,
        "answer_timeout_s": args.answer_timeout,
        "barge_in_after_s": args.barge_in_after,
        "timeout_s": args.timeout,
        "record": args.record,
        "marks": args.marks,
        "prebuffer": not args.no_prebuffer,
        "hangup_on_disconnect": args.hangup_on_disconnect,
        "echo_db": args.echo_db,
        "echo_ms": args.echo_ms,
    }
    try:
        if args.calls == 1:
            result = asyncio.run(run_call(url, steps, **options))
            _hide_credentials(result, url, args.url)
            print(result.model_dump_json(indent=2) if args.json else format_call(result))
            return 0 if result.ok else 1
        multi = asyncio.run(run_calls(url, steps, args.calls, ramp_s=args.ramp, **options))
        multi.errors = [line.replace(url, args.url) for line in multi.errors]
    except (WavError, ValueError, OSError) as exc:
        print(f"voiceplat call: {exc}", file=sys.stderr)
        return 2
    print(multi.model_dump_json(indent=2) if args.json else format_multi(multi))
    return 0 if multi.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voiceplat call", description=__doc__.split("\n")[0])
    add_call_arguments(parser)
    return run_call_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
