"""voiceplat: serve | call | check | migrate | models | forget | calls | web."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING

from voiceplat.errors import RobotError

if TYPE_CHECKING:
    from voiceplat.reports.after_call import AfterCall
    from voiceplat.robot import Robot
    from voiceplat.storage.recorder import Recorder
    from voiceplat.storage.records import CallRecord
    from voiceplat.telephony.ingress.audiosocket.server import AudioSocketServer
    from voiceplat.telephony.ingress.sip.server import SipServer

log = logging.getLogger("voiceplat")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_check(args: argparse.Namespace) -> int:
    from voiceplat.robot import load_robot

    try:
        robot = load_robot(args.robot)
        problems = robot.problems()
        if robot.config.sip is not None:  # a password variable or a TLS file that is missing
            config_file = robot.directory / "config.json"
            sip_problems = robot.config.sip.problems(robot.env, robot.directory)
            problems += [f"{config_file}: {line}" for line in sip_problems]
    except RobotError as exc:
        problems = exc.problems
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 1
    providers = ", ".join(f"{kind} {s.provider}" for kind, s in robot.settings.items())
    config = robot.config
    where = f"{'wss' if config.tls else 'ws'}://{config.ws_host}:{config.ws_port}/"
    print(f"{args.robot}: OK ({config.mode}; {providers}; {where})")
    if config.sip is not None:
        print(f"  {config.sip.summary()}")
    if config.audiosocket is not None and config.audiosocket.enabled:
        print(f"  {config.audiosocket.summary()}")
    from voiceplat.telephony.media_auth import exposure_warnings

    for warning in exposure_warnings(config.ws_host, config.media_auth, config.tls, robot.env):
        print(f"  warning: {warning}")
    return 0


async def _serve(
    robot_dir: str,
    host: str | None,
    port: int | None,
    grace_s: float,
    web_port: int | None = None,
    web_host: str = "127.0.0.1",
) -> int:
    from voiceplat.observability.metrics import MetricsSink
    from voiceplat.robot import load_robot
    from voiceplat.storage.live import LiveCalls
    from voiceplat.storage.recorder import Recorder
    from voiceplat.storage.sinks import sinks_from_env
    from voiceplat.telephony.server import RobotServer

    robot = load_robot(robot_dir)
    if robot.config.privacy.mask_caller_in_logs:  # before the first call can log a number
        from voiceplat.privacy.masking import mask_caller_numbers_in_logs

        mask_caller_numbers_in_logs()
    problems = robot.problems()
    if web_port is not None:  # before anything starts: a web service that may not listen there
        from voiceplat.web.settings import WebSettings

        problems += WebSettings.from_env(robot.env, web_host, web_port).problems()
    if problems:
        raise RobotError(problems)
    config = robot.config
    # The JSON file, plus PostgreSQL / MongoDB / Redis when POSTGRES_DSN / MONGO_URI / REDIS_URL
    # are set; a store sink applies its migrations when it connects and spools while it is down.
    # In process too: the calls in progress (GET /live, the web pages) and the metrics (/metrics).
    live, metrics = LiveCalls(), MetricsSink.for_robot(robot)
    sinks = sinks_from_env(robot.env, robot.logs_dir, robot.directory / "spool")
    recorder = Recorder([*sinks, live, metrics])
    metrics.watch(recorder)
    await recorder.start()
    log.info("robot %s: loading providers", robot.name)
    await robot.start()
    from voiceplat.telephony.admission import admission_for
    from voiceplat.telephony.busy import busy_phrase_for

    admission_for(robot)  # SIP sees the process's limits before the first WebSocket call
    await busy_phrase_for(robot).audio()  # synthesised now, not while a caller waits
    robot.after_call = _after_call(robot, recorder)
    await robot.after_call.start()
    from voiceplat.recording.call import start_retention

    retention = start_retention(robot)  # old recordings are deleted now, then hourly
    from voiceplat.privacy.retention import start_record_retention

    records_retention = start_record_retention(robot)  # privacy.retention_days: old records
    # What startup made (modules, models) lives as long as the process: out of the garbage
    # collector's sight, a full collection scans only what calls make, a pause of ~1 ms rather
    # than ~30 ms in the middle of the calls' audio (it showed as jitter in benchmarks/storage.py).
    gc.freeze()
    server = RobotServer(robot, recorder, live)
    await server.start(host or config.ws_host, port if port is not None else config.ws_port)
    log.info("robot %s listening on ws://%s:%d/", robot.name, host or config.ws_host, server.port)
    web = None
    if web_port is not None:  # the pages in this process: the live page reads its LiveCalls
        from voiceplat.web.cli import start_web

        robots = {robot.name: robot}
        listening = {robot.name: (host or config.ws_host, server.port)}
        web = await start_web(robots, robot.env, web_host, web_port, live, listening)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: exiting now")
            logging.shutdown()
            os._exit(130)  # at once: no more waiting on calls or stores
        log.info("stopping: no new calls; live calls may finish (Ctrl-C again to quit now)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    # After the handlers: a script that stops the robot as soon as SIP is up must not kill it.
    sip = await _start_sip(robot, recorder)
    audiosocket = await _start_audiosocket(robot, recorder)
    await stop.wait()
    if web is not None:
        await web.stop()
    listeners = [s.shutdown(grace_s) for s in (sip, audiosocket) if s is not None]
    await asyncio.gather(server.shutdown(grace_s), *listeners)
    if retention is not None:
        retention.cancel()
    if records_retention is not None:
        records_retention.cancel()
    await robot.after_call.aclose()
    await recorder.aclose()
    await robot.aclose()
    return 0


def _after_call(robot: Robot, recorder: Recorder) -> AfterCall:
    """Each finished call's summary (by the robot's LLM, when it has one) and Telegram report."""
    from voiceplat.reports.after_call import AfterCall

    def amend(call: CallRecord, summary: str) -> None:
        recorder.amend(call, summary=summary)

    llm = robot.llm if "llm" in robot.providers else None
    # A local model serves the calls too: its summaries wait until no call is in progress.
    idle = robot.idle if llm is not None and llm.bounds_own_time else None
    return AfterCall.from_env(robot.config.reports, robot.env, llm=llm, amend=amend, idle=idle)


async def _start_audiosocket(robot: Robot, recorder: Recorder) -> AudioSocketServer | None:
    """The robot's AudioSocket listener (Asterisk), when its config has an enabled section."""
    settings = robot.config.audiosocket
    if settings is None or not settings.enabled:
        return None
    from voiceplat.telephony.ingress.audiosocket.server import AudioSocketServer

    server = AudioSocketServer(robot, recorder, settings)
    try:
        listening = await server.start()
    except OSError as exc:
        raise RobotError(
            f"audiosocket: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    # A line of its own on stdout, as SIP's: scripts and tests wait for it.
    print(f"audiosocket: listening on {listening}", flush=True)
    return server


async def _start_sip(robot: Robot, recorder: Recorder) -> SipServer | None:
    """The robot's SIP endpoint, when its config has an enabled `sip` section."""
    settings = robot.config.sip
    if settings is None or not settings.enabled:
        return None
    from voiceplat.telephony.ingress.sip.server import SipServer

    problems = settings.problems(robot.env, robot.directory)
    if problems:
        raise RobotError(problems)
    sip = SipServer(robot, recorder, settings, robot.env)
    listening = await sip.start()
    # A line of its own on stdout: scripts and tests wait for it to know SIP is up.
    print(f"sip: listening on {', '.join(listening)}; {sip.max_calls} calls at once", flush=True)
    return sip


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(
            _serve(args.robot, args.host, args.port, args.grace, args.web_port, args.web_host)
        )
    except RobotError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from voiceplat.config_sources import read_env_files
    from voiceplat.storage.migrations import migrate

    if args.robot is not None and not Path(args.robot).is_dir():
        print(f"{args.robot}: no such robot folder", file=sys.stderr)
        return 1
    env = read_env_files(Path(args.robot or "."))
    if not (env.get("POSTGRES_DSN") or env.get("MONGO_URI")):
        print("nothing to migrate: neither POSTGRES_DSN nor MONGO_URI is set", file=sys.stderr)
        return 1
    try:
        lines = asyncio.run(migrate(env))
    except Exception as exc:
        print(f"migrate failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def _add_module_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    module_name: str,
    add_arguments: str,
    run: str,
) -> None:
    """A subcommand whose code lives in `module_name`.

    A module that cannot be imported still gets its subcommand, which reports the error (with its
    traceback) and exits 1 when used, and says "unavailable" in --help. It never disappears from
    the parser, and a broken simulator cannot take `serve` or `models` down with it.
    """
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while importing it
        problem = "".join(traceback.format_exception(exc)).rstrip()
        # No option prefix: whatever follows (--help included) reaches the error report.
        broken = commands.add_parser(
            name, help=f"{help_text} (UNAVAILABLE: {exc})", prefix_chars="\0", add_help=False
        )
        broken.add_argument("arguments", nargs="*")
        broken.set_defaults(func=lambda _args: _unavailable(name, module_name, problem))
        return
    command = commands.add_parser(name, help=help_text)
    getattr(module, add_arguments)(command)
    command.set_defaults(func=getattr(module, run))


def _unavailable(name: str, module_name: str, problem: str) -> int:
    print(f"voiceplat {name}: cannot import {module_name}:\n{problem}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceplat", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run a robot: answer calls from FreeSWITCH (WebSocket) and, with a sip section, over SIP",
    )
    serve.add_argument("robot", help="robot folder, e.g. robots/pipeline_russian")
    serve.add_argument("--host", help="listen address (default: ws_host from config)")
    serve.add_argument("--port", type=int, help="listen port (default: ws_port from config)")
    serve.add_argument("--grace", type=float, default=30.0, help="seconds live calls get on stop")
    serve.add_argument(
        "--web-port", type=int, help="also run the web service (voiceplat web) on this port"
    )
    serve.add_argument(
        "--web-host",
        default="127.0.0.1",
        help="the web service's address (default 127.0.0.1; any other needs VOICEPLAT_WEB_TOKEN)",
    )
    serve.set_defaults(func=cmd_serve)

    check = commands.add_parser("check", help="validate a robot folder")
    check.add_argument("robot")
    check.set_defaults(func=cmd_check)

    migrate = commands.add_parser(
        "migrate", help="apply PostgreSQL migrations and create MongoDB indexes"
    )
    migrate.add_argument(
        "robot", nargs="?", help="robot folder whose .env names the stores (default: root .env)"
    )
    migrate.set_defaults(func=cmd_migrate)

    _add_module_command(
        commands,
        "call",
        "simulate a caller over the FreeSWITCH protocol (ws://) or SIP (sip:)",
        "voiceplat.simulator.cli",
        "add_call_arguments",
        "run_call_command",
    )
    _add_module_command(
        commands,
        "models",
        "list, prepare and verify local models",
        "voiceplat.models.cli",
        "add_models_arguments",
        "run_models_command",
    )
    _add_module_command(
        commands,
        "forget",
        "delete one caller's calls everywhere: JSON records, stores, recordings",
        "voiceplat.privacy.cli",
        "add_forget_arguments",
        "run_forget_command",
    )
    _add_module_command(
        commands,
        "calls",
        "the calls in progress in every robot process (Redis); --live follows them",
        "voiceplat.live_cli",
        "add_calls_arguments",
        "run_calls_command",
    )
    _add_module_command(
        commands,
        "web",
        "the web service: talk to robots, calls, robots, live calls, seed APIs (127.0.0.1:8000)",
        "voiceplat.web.cli",
        "add_web_arguments",
        "run_web_command",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
