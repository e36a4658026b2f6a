"""Child processes the tests start (`voiceplat serve`): wait until one listens, and when it cannot,
fail with what it printed rather than with the "connection refused" its absence causes later."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

START_TIMEOUT_S = 60.0
"""Only a child that hangs takes this long to listen; a slow machine takes seconds."""


def output_of(log: Path, limit: int = 4000) -> str:
    """The end of what the child wrote (its stdout and stderr go to `log`)."""
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no output: {exc})"
    return text[-limit:] if text else "(no output)"


async def wait_listening(
    process: asyncio.subprocess.Process,
    port: int,
    log: Path,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Returns once something accepts connections on 127.0.0.1:`port`; raises AssertionError with
    the child's output if the child exits first, or is still not listening after `timeout_s`."""
    exited = asyncio.ensure_future(process.wait())
    try:
        async with asyncio.timeout(timeout_s):
            while not await listening(port):
                if exited.done():
                    raise AssertionError(
                        f"the child exited with {process.returncode} before listening on "
                        f"127.0.0.1:{port}; its output:\n{output_of(log)}"
                    )
                await asyncio.wait([exited], timeout=0.05)  # its exit ends the wait at once
    except TimeoutError:
        raise AssertionError(
            f"the child did not listen on 127.0.0.1:{port} within {timeout_s:g} s; its output:\n"
            f"{output_of(log)}"
        ) from None
    finally:
        exited.cancel()


async def listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


class ChildOutput:
    """What a child process (`subprocess.Popen`, stdout a pipe with stderr merged) prints: a reader
    thread copies it to `log_path` and keeps its lines, which a test waits on (`wait_output`)
    instead of sleeping until the child has done something."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
        self.process, self.log_path, self.name = process, log_path, name
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("w") as log:
            for raw in self.process.stdout:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        """Everything printed so far."""
        with self._changed:
            return "".join(self._lines)

    def tail(self, limit: int = 6000) -> str:
        return self.text[-limit:] or "(no output)"

    def line_count(self) -> int:
        """Lines printed so far: a later `wait_output(..., start=)` looks only after them."""
        with self._changed:
            return len(self._lines)

    def wait_output(self, text: str, timeout: float, start: int = 0) -> str:
        """The first line (from line `start` on) containing `text`; fails with the output if the
        child exits first or prints none within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[start:]:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    break
                self._changed.wait(left)
        how = f"exited with {self.process.poll()}" if self._ended else f"ran {timeout:g} s"
        raise AssertionError(f"{self.name} {how} without printing {text!r}; output:\n{self.tail()}")

    def join(self, timeout: float) -> None:
        self._reader.join(timeout)
