"""Child processes the tests start (`voiceplat serve`): wait until one listens, and when it cannot,
fail with what it printed rather than with the "connection refused" its absence causes later."""

from __future__ import annotations

import asyncio
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
