"""The one thread that owns pjsua2: it creates the library, polls its events, runs our commands.

pjsua2 runs with no worker threads of its own (`threadCnt = 0`), so every SIP callback arrives in
this thread, from `libHandleEvents`, and every command the asyncio side sends (answer, hang up,
REFER) runs here too: no pjsua2 object is touched by two threads at once. Only the media clock
calls into Python from another thread (frame callbacks), and those touch nothing but buffers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

POLL_MS = 10
"""How long one poll of PJSIP's events may block: the latency of a command from asyncio."""


class PjThread:
    def __init__(self, name: str = "pjsip") -> None:
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._commands = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._stopping = threading.Event()
        self._poll: Callable[[int], object] | None = None
        self._started = False

    def start(self, poll: Callable[[int], object] | None = None) -> None:
        """Starts the thread. `poll(ms)` (the endpoint's libHandleEvents) may be set later."""
        self._poll = poll
        self._started = True
        self._thread.start()

    def set_poll(self, poll: Callable[[int], object] | None) -> None:
        self._poll = poll

    def submit(self, work: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Runs `work` in the PJSIP thread; the future has its result or exception."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._stopping.is_set() or not self._started:
            future.set_exception(RuntimeError("the SIP endpoint is not running"))
            return future
        self._commands.put((work, future))
        return future

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def call(self, work: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Runs `work` in the PJSIP thread and waits for it (for callers outside asyncio)."""
        if threading.current_thread() is self._thread:
            return work()
        return self.submit(work).result(timeout_s)

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout_s: float = 10.0) -> None:
        """Runs what is queued, then ends the thread."""
        if not self._started:
            return
        self._stopping.set()
        self._commands.put((lambda: None, concurrent.futures.Future()))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _main(self) -> None:
        while True:
            poll = self._poll
            if poll is not None:
                try:
                    poll(POLL_MS)
                except Exception:  # a callback raised: PJSIP must keep serving the other calls
                    log.exception("SIP event handling failed")
                timeout = 0.0
            else:
                timeout = POLL_MS / 1000.0
            self._run_commands(timeout)
            if self._stopping.is_set() and self._commands.empty():
                return

    def _run_commands(self, timeout: float) -> None:
        try:
            work, future = (
                self._commands.get(timeout=timeout) if timeout else self._commands.get_nowait()
            )
        except queue.Empty:
            return
        while True:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as exc:  # handed to whoever waits for it
                    future.set_exception(exc)
            try:
                work, future = self._commands.get_nowait()
            except queue.Empty:
                return
