"""Running SIPp for the tests: one run's scenario, pcap files and logs in a folder of the test,
bounded by SIPp's own global timeout, which fails the run (a call that never ends is an error)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sip_tools import HANG_S, ROOT, free_port, free_rtp_port, require_tool

SIPP_SCENARIOS = ROOT / "tests" / "fixtures" / "sipp"


@dataclass
class SippResult:
    """How one SIPp run ended. SIPp exits 0 when every call succeeded, 1 when one failed (an
    unexpected message, a recv timeout, its global timeout), other codes for its own errors.
    `messages`: every SIP message sent and received (-trace_msg); `errors`: unexpected messages
    and why a call failed (-trace_err); `output`: what SIPp printed (its statistics screen)."""

    returncode: int
    messages: str
    errors: str
    output: str = ""

    def __iter__(self) -> Iterator[Any]:  # `returncode, messages, errors = run_sipp(...)`
        return iter((self.returncode, self.messages, self.errors))

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def explain(self, limit: int = 6000) -> str:
        """For an assertion message: the exit code, the errors and the end of the messages."""
        return (
            f"sipp exited {self.returncode}\n--- errors:\n{self.errors[-limit:] or '(none)'}\n"
            f"--- messages (end):\n{self.messages[-limit:] or '(none)'}\n"
            f"--- output (end):\n{self.output[-2000:] or '(none)'}"
        )


class Sipp:
    """A SIPp process started by `start_sipp`; `wait()` gives its result."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, port: int) -> None:
        self.process, self.workdir = process, workdir
        self.port = port  # SIPp's own SIP port

    def wait(self, timeout: float = HANG_S + 30) -> SippResult:
        # SIPp's -timeout ends a stuck call first; this bound is for a SIPp that hangs itself.
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result()

    def result(self) -> SippResult:
        logs = [self.workdir / f"{name}.log" for name in ("messages", "errors", "output")]
        texts = [p.read_text(errors="replace") if p.exists() else "" for p in logs]
        code = self.process.returncode
        return SippResult(code if code is not None else -1, *texts)

    def stop(self) -> None:
        self.process.kill()  # a no-op for one that has exited
        self.process.wait()


def start_sipp(
    scenario: str | Path,
    target: str | None = None,
    *,
    workdir: Path | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = HANG_S,
    transport: str = "udp",
    host: str = "127.0.0.1",
    port: int | None = None,
    calls: int = 1,
) -> Sipp:
    """Starts SIPp on `scenario` (a file, or a name in tests/fixtures/sipp/) against `target`
    ("host:port"; None for a UAS that waits for requests). Runs in `workdir` (a new temporary
    folder by default), where scenarios find their pcap files by relative name."""
    sipp = require_tool("sipp")
    path = Path(scenario)
    if not path.is_absolute() and not path.exists():
        path = SIPP_SCENARIOS / path
    workdir = workdir or Path(tempfile.mkdtemp(prefix="sipp-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # SIPp looks for the pcap files a scenario plays next to the scenario first.
    path = Path(shutil.copy(path, workdir / path.name))
    for log in ("messages.log", "errors.log"):  # SIPp writes its error file only on errors
        (workdir / log).unlink(missing_ok=True)
    port = port or free_port(host)
    command = [
        sipp,
        *([target] if target else []),
        *["-sf", str(path), "-m", str(calls), "-nostdin"],
        *["-t", {"udp": "u1", "tcp": "t1"}[transport]],
        *["-i", host, "-p", str(port), "-mi", host, "-mp", str(free_rtp_port(host))],
        *["-trace_msg", "-message_file", str(workdir / "messages.log")],
        *["-trace_err", "-error_file", str(workdir / "errors.log")],
        # SIPp's global timeout fails the run: a call that never ends is an error, not a pass.
        *["-timeout", f"{max(1, round(timeout))}s", "-timeout_error"],
        *extra_args,
    ]
    with (workdir / "output.log").open("wb") as output:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    return Sipp(process, workdir, port)


def run_sipp(
    scenario: str | Path,
    target: str | None,
    *,
    extra_args: Sequence[str] = (),
    timeout: float = HANG_S,
    **how: Any,
) -> SippResult:
    """Runs SIPp to its end (one call unless `calls`); `how`: the rest of `start_sipp`'s options
    (workdir, transport, port)."""
    process = start_sipp(scenario, target, extra_args=extra_args, timeout=timeout, **how)
    return process.wait(timeout + 30)
