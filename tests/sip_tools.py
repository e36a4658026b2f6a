"""Tools for the SIP tests: finding SIPp, baresip and kamailio (missing: a skip, which fails under
CI=true, tests/ci_skips.py), free ports, a robot serving SIP in a child process (`SipRobot`: ready
at its `sip: listening on` line), and network namespaces for baresip, which skips loopback
addresses for media (`netns_command`: `unshare -rn` with 10.99.0.1/32 on `lo`).

Running SIPp itself (`run_sipp`, `start_sipp`) is in tests/integration/sip/sipp.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.child_process import ChildOutput
from voiceplat.config_sources import deep_merge

ROOT = Path(__file__).resolve().parents[1]
ECHO_ROBOT = ROOT / "tests" / "fixtures" / "robots" / "echo"

HANG_S = 60.0
"""Only a hang takes this long: a robot that never listens, a call that never ends."""

TOOL_PACKAGES = {"sipp": "sip-tester", "baresip": "baresip", "kamailio": "kamailio"}
"""Tool -> the Debian package that has it (scripts/setup.sh test installs them)."""

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # kamailio lives there, often not on PATH


def find_tool(name: str) -> str | None:
    """The tool's path, on PATH or in an sbin folder; None when it is not installed."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))


def require_tool(name: str) -> str:
    """The tool's path; skips the test when it is missing (a failure under CI=true)."""
    if found := find_tool(name):
        return found
    package = TOOL_PACKAGES.get(name, name)
    pytest.skip(f"{name} is not installed (apt package {package}); run scripts/setup.sh test")


# -- ports ---------------------------------------------------------------------------------------


def _free(host: str, also: Callable[[int], tuple[int, int]]) -> int:
    """A UDP port the kernel picks, for which `also(port)` (a socket type and port) binds too."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            kind, other = also(port)
            if other > 65535:
                continue
            with socket.socket(socket.AF_INET, kind) as second:
                try:
                    second.bind((host, other))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port pair on {host}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now (SIP listens on both)."""
    return _free(host, lambda port: (socket.SOCK_STREAM, port))


def free_rtp_port(host: str = "127.0.0.1") -> int:
    """An even UDP port whose odd neighbour (RTCP) is free too."""
    return _free(host, lambda port: (socket.SOCK_DGRAM, port + 1 if port % 2 == 0 else 65536))


# -- a robot serving SIP -------------------------------------------------------------------------

LISTENING = "sip: listening on"


class SipRobot:
    """`voiceplat serve <robot>` in a child process, its output collected by a reader thread."""

    def __init__(
        self,
        directory: Path,
        host: str,
        port: int,
        ws_port: int,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.directory, self.host, self.port, self.ws_port = directory, host, port, ws_port
        self.log_path = directory / "serve.log"
        command = [sys.executable, "-m", "voiceplat.cli", "serve", str(directory)]
        command += ["--host", host, "--port", str(ws_port), "--grace", "5"]
        self.process = subprocess.Popen(
            wrap(command) if wrap else command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output = ChildOutput(self.process, self.log_path, "the robot")

    @property
    def target(self) -> str:
        """Where SIPp sends to: "host:port"."""
        return f"{self.host}:{self.port}"

    def uri(self, user: str = "robot") -> str:
        return f"sip:{user}@{self.host}:{self.port}"

    @property
    def logs(self) -> str:
        """Everything the robot printed so far."""
        return self.output.text

    def wait_output(self, text: str, timeout: float = HANG_S, start: int = 0) -> str:
        """The first line (from line `start` on) containing `text`; fails with the output if the
        robot exits first or prints none within `timeout`."""
        return self.output.wait_output(text, timeout, start)

    def line_count(self) -> int:
        """Lines printed so far: a later `wait_output(..., start=)` looks only after them."""
        return self.output.line_count()

    def tail(self, limit: int = 6000) -> str:
        return self.output.tail(limit)

    def records(self, count: int = 0, timeout: float = HANG_S) -> list[dict[str, Any]]:
        """The call records in the logs folder, oldest first; with `count`, waits until at least
        that many are finished (a record is rewritten when its call ends)."""
        deadline = time.monotonic() + timeout
        while True:
            records = read_records(self.directory)
            finished = [r for r in records if r["call"]["status"] != "in_progress"]
            if len(finished) >= count:
                return records
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(
                    f"{len(finished)} finished call record(s), expected {count}: "
                    f"{[r['call'] for r in records]}\nrobot output:\n{self.tail()}"
                )
            # Nothing announces a record's rewrite to another process; look again shortly.
            time.sleep(0.05)

    def stop(self, timeout: float = HANG_S) -> int:
        """SIGTERM, then the exit code; a robot that does not exit is killed (and fails)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"no exit after SIGTERM; output:\n{self.tail()}") from None
        self.output.join(timeout)
        return self.process.returncode


def read_records(robot_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((robot_dir / "logs").glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # replaced while we read it: the next look sees the new one
    return records


def sip_section(host: str = "127.0.0.1", **overrides: Any) -> dict[str, Any]:
    """A `sip` config section on free ports (looked for on 127.0.0.1 when `host` is in a namespace
    of the test's own, where every port is free), for one test's robot."""
    here = host if host.startswith("127.") else "127.0.0.1"
    section = {"enabled": True, "host": host, "port": free_port(here), "transports": ["udp", "tcp"]}
    section |= {"rtp_port": free_rtp_port(here), "rtp_port_range": 200}
    return deep_merge(section, overrides)


def start_sip_robot(
    directory: Path,
    sip: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
    **config: Any,
) -> SipRobot:
    """Writes the `sip` section (free ports unless given) and `config` over the robot's config.json
    (and `env` into its .env), starts it, and returns once it listens for SIP."""
    sip = sip_section(**(sip or {}))
    path = directory / "config.json"
    merged = deep_merge(json.loads(path.read_text()), {**config, "sip": sip})
    if "ws_port" not in config:
        merged["ws_port"] = free_port()
    path.write_text(json.dumps(merged, ensure_ascii=False, indent=2))
    if env:
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    robot = SipRobot(directory, sip["host"], sip["port"], merged["ws_port"], wrap)
    try:
        robot.wait_output(LISTENING)
    except BaseException:
        robot.stop()
        raise
    return robot


@pytest.fixture
def sip_robot(tmp_path: Path) -> Iterator[Callable[..., SipRobot]]:
    """A starter: `sip_robot(sip={...}, env={...}, **config)` copies the echo robot (fake providers)
    into tmp_path and serves it; every robot started is stopped at the end of the test."""
    started: list[SipRobot] = []

    def start(sip: dict[str, Any] | None = None, *, name: str = "robot", **how: Any) -> SipRobot:
        directory = tmp_path / "robots" / name
        shutil.copytree(ECHO_ROBOT, directory, ignore=shutil.ignore_patterns("logs"))
        robot = start_sip_robot(directory, sip, **how)  # env=, wrap=, config overrides
        started.append(robot)
        return robot

    yield start
    for robot in started:
        robot.stop()


# -- network namespaces --------------------------------------------------------------------------

NETNS_ADDRESS = "10.99.0.1"

NO_NAMESPACES = (
    "this kernel or container allows no unprivileged network namespaces (unshare -rn); "
    "a property of the host, not of the setup"
)


def netns_command(
    argv: Sequence[str], addresses: Sequence[str] = (f"{NETNS_ADDRESS}/32",)
) -> list[str]:
    """`argv` run as the first process of a new user + network namespace whose `lo` is up and has
    `addresses` (unshare execs, so the process keeps the pid Popen reports)."""
    setup = "".join(f"ip addr add {address} dev lo && " for address in addresses)
    script = f'{setup}ip link set lo up && exec "$0" "$@"'
    return ["unshare", "-rn", "sh", "-c", script, *argv]


def netns_enter_command(pid: int, argv: Sequence[str]) -> list[str]:
    """`argv` run inside the namespaces of process `pid` (one started with `netns_command`)."""
    return ["nsenter", "-t", str(pid), "-U", "-n", "--preserve-credentials", *argv]


def namespace_problem() -> str | None:
    """None when `netns_command` works here; else what failed."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) or ip (iproute2) is not installed"
    probe = netns_command(["ip", "-o", "addr", "show", "dev", "lo"])
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=HANG_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if done.returncode != 0 or NETNS_ADDRESS not in done.stdout:
        return f"unshare -rn failed ({done.returncode}): {done.stderr.strip()}"
    return None
