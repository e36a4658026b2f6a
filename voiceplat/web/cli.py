"""`voiceplat web ROBOT_DIR... [--host 127.0.0.1] [--port 8000]`: the web service on its own.

It loads the robots' folders (config, providers' settings) but starts no provider: the pages read
call records and the robots' own ports, and the seed services start what they use on demand.
`voiceplat serve ROBOT --web-port N` runs the same service inside the robot's process
(`start_web`), where the live page reads the robot's own live calls.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from voiceplat.errors import RobotError
from voiceplat.web.settings import WebSettings

if TYPE_CHECKING:
    from voiceplat.robot import Robot
    from voiceplat.storage.live import LiveCalls

log = logging.getLogger("voiceplat.web")

GRACE_S = 5
"""On stop, open connections (a live page's event stream never ends) get this long."""


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that runs it decides when it stops
    (`voiceplat serve` shares its event loop and its Ctrl-C with the robot)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class WebService:
    server: EmbeddedServer
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task

    def force_stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # open connections (an event stream) are not waited for


def load_robots(robot_dirs: Sequence[str | Path]) -> dict[str, Robot]:
    """The robots by name (folder name), in order; RobotError with every folder's problems."""
    from voiceplat.robot import load_robot

    robots: dict[str, Robot] = {}
    problems: list[str] = []
    for robot_dir in robot_dirs:
        try:
            robot = load_robot(robot_dir)
        except RobotError as exc:
            problems += exc.problems
            continue
        if robot.name in robots:
            problems.append(
                f"{robot_dir}: a second robot named {robot.name!r} (also "
                f"{robots[robot.name].directory}); robots are named after their folder"
            )
            continue
        robots[robot.name] = robot
    if problems:
        raise RobotError(problems)
    return robots


def web_env(robots: Mapping[str, Robot]) -> dict[str, str]:
    """The stores and the token: the first robot's env (root .env < its .env < the process)."""
    from voiceplat.config_sources import read_env_files

    first = next(iter(robots.values()), None)
    return dict(first.env) if first is not None else read_env_files(Path.cwd())


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here: a taken port is a one-line error, not uvicorn's exit."""
    address = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise RobotError(
            f"web service: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


async def start_web(
    robots: Mapping[str, Robot],
    env: Mapping[str, str],
    host: str,
    port: int,
    in_process_live: LiveCalls | None = None,
    robot_addresses: Mapping[str, tuple[str, int]] | None = None,
) -> WebService:
    """Starts the service in this event loop; RobotError when it must not listen there.

    `robot_addresses`: {robot name: (ws_host, ws_port)} where a robot listens other than its
    config says (`serve --host/--port`): the pages connect there."""
    from voiceplat.web.app import create_app
    from voiceplat.web.calls.store import call_store_for
    from voiceplat.web.context import WebContext
    from voiceplat.web.live_source import live_source_for
    from voiceplat.web.routes_talk import ROBOT_ADDRESSES

    settings = WebSettings.from_env(env, host=host, port=port)
    problems = settings.problems()
    if problems:
        raise RobotError(problems)
    context = WebContext(
        settings=settings,
        robots=dict(robots),
        calls=call_store_for(env, robots),
        live=live_source_for(env, robots, in_process_live, settings.token_value()),
        in_process_live=in_process_live,
    )
    if robot_addresses:
        context.extra[ROBOT_ADDRESSES] = dict(robot_addresses)
    config = uvicorn.Config(
        create_app(context),
        host=host,
        port=port,
        log_level="warning",  # voiceplat's own lines say where it listens
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACE_S,
    )
    listener = bound_socket(host, port)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="voiceplat-web")
    while not server.started:  # uvicorn offers no event; a startup error ends the task instead
        if task.done():
            task.result()  # raises what stopped it
            raise RobotError(f"web service: could not start on {host}:{port}")
        await asyncio.wait([task], timeout=0.02)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    service = WebService(server, task, f"http://{shown}:{bound}/")
    # A line of its own on stdout: scripts and tests wait for it to know the pages are up.
    print(f"web: listening on {service.url}", flush=True)
    return service


async def _run(args: argparse.Namespace) -> int:
    robots = load_robots(args.robots)
    web = await start_web(robots, web_env(robots), args.host, args.port)
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if web.server.should_exit:
            web.force_stop()
        web.server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await web.task
    return 0


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("robots", nargs="+", metavar="ROBOT_DIR", help="robot folders to show")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen address (default 127.0.0.1; any other needs VOICEPLAT_WEB_TOKEN)",
    )
    parser.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")


def run_web_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except RobotError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
