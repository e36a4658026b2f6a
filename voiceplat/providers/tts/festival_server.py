"""The `festival --server` process of a `festival` TTS: start, setup, connections, restart, kill.

Why a server: starting `text2wave` costs ~0.8 s per sentence (the voice loads each time). One
`festival --server` per provider loads the voice once; for every connection it forks a copy that
already has the voice in memory. Each sentence gets its own connection (`FestivalChild`), hence
its own forked child, which a cancelled synthesis SIGKILLs through a pidfd; a dead or wedged
server is replaced on the next sentence.

A connected client may evaluate any Scheme, `system` included, so nobody else may reach the
server: `festival_sandbox.py` starts it in a network namespace with only loopback and hands this
process each connection. Where the kernel allows no namespace (`network_namespace: "auto"`), the
server listens on every interface (Festival cannot bind to one address), accepts only peers that
it names `localhost`, and requires a random password. The setup, password included, reaches
festival on its stdin: it is in no command line, no environment and no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path
from typing import Literal

from voiceplat.providers.base import ProviderError
from voiceplat.providers.tts.festival_child import FestivalChild
from voiceplat.providers.tts.festival_protocol import FestivalProtocolError, scheme_string

log = logging.getLogger(__name__)

NetworkNamespace = Literal["auto", "required", "off"]

SANDBOX = Path(__file__).with_name("festival_sandbox.py")
READY_MARK = "Festival server started on port"
START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
STOP_GRACE_S = 2.0
PORT_ATTEMPTS = 3
WARM_TEXT = "Проверка связи."
# Festival 2.5's server reads `server_max_client` (festival.scm documents `server_max_clients`,
# which nothing reads; the default is 10). Killed children are reaped only at the next accept.
MAX_CLIENTS = 256
_MESSAGE_SIZE = 512


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _NoNamespace(Exception):
    """The sandbox could not make a network namespace."""


class _Sandbox:
    """A running `festival_sandbox.py`: festival's parent, and the source of connections to it."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        control: socket.socket,
        festival_pid: int,
        output: asyncio.StreamReader,
        output_pipe: asyncio.ReadTransport,
    ) -> None:
        self.process = process
        self.festival_pid = festival_pid
        self.output = output  # festival's log, until its last child exits
        self.output_pipe = output_pipe
        self._control = control
        self._lock = asyncio.Lock()
        self._owed = 0  # answers to requests whose sender was cancelled while waiting

    @classmethod
    async def launch(cls, port: int, isolated: bool, setup: bytes) -> _Sandbox:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        # Festival's log goes to a pipe of our own: its forked children hold the pipe too, and
        # asyncio's Process.wait() would wait for them to close the ones it made.
        log_read, log_write = os.pipe()
        mode = "isolated" if isolated else "shared"
        argv = [str(os.getpid()), str(theirs.fileno()), str(port), mode]
        try:
            process = await asyncio.create_subprocess_exec(
                *[sys.executable, "-I", "-S", str(SANDBOX), *argv],
                *["--", "festival", "--server", "/dev/stdin"],
                stdin=asyncio.subprocess.PIPE,
                stdout=log_write,
                stderr=log_write,
                pass_fds=(theirs.fileno(),),
            )
        except OSError as exc:
            ours.close()
            os.close(log_read)
            raise ProviderError(f"cannot run the festival sandbox: {exc}") from None
        finally:
            theirs.close()
            os.close(log_write)
        output = asyncio.StreamReader()
        output_pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output), os.fdopen(log_read, "rb", buffering=0)
        )
        assert process.stdin is not None
        process.stdin.write(setup)
        with contextlib.suppress(OSError):  # it exits at once after an error
            await process.stdin.drain()
        process.stdin.close()
        try:
            message, _ = await _receive(ours)
        except BaseException:
            ours.close()
            output_pipe.close()
            await _kill(process)
            raise
        word, _, rest = message.decode(errors="replace").partition(" ")
        if word == "started":
            return cls(process, ours, int(rest), output, output_pipe)
        ours.close()
        output_pipe.close()
        await _kill(process, grace_s=STOP_GRACE_S)
        if word == "no-namespace":
            raise _NoNamespace(rest)
        raise ProviderError(f"festival sandbox: {rest or 'exited'}")

    async def connect(self) -> socket.socket:
        """A new TCP connection to the server (made inside its namespace)."""
        async with self._lock:
            while self._owed:
                _, fds = await _receive(self._control)
                self._owed -= 1
                for fd in fds:
                    os.close(fd)
            await asyncio.get_running_loop().sock_sendall(self._control, b"connect")
            try:
                message, fds = await _receive(self._control)
            except asyncio.CancelledError:
                self._owed += 1
                raise
        if not fds:
            raise ProviderError(f"festival sandbox: {message.decode(errors='replace')}")
        connection = socket.socket(fileno=fds[0])
        connection.setblocking(False)
        return connection

    async def stop(self) -> None:
        """Stops the sandbox and festival's server; children still serving a sentence finish."""
        # On end of the control socket the sandbox kills festival and exits.
        self._control.close()
        await _kill(self.process, grace_s=STOP_GRACE_S)


async def _receive(control: socket.socket) -> tuple[bytes, list[int]]:
    """One message from the sandbox, with the descriptor it carries, if any."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _MESSAGE_SIZE, 1)
        except BlockingIOError:
            readable = loop.create_future()
            loop.add_reader(control.fileno(), readable.set_result, None)
            try:
                await readable
            finally:
                loop.remove_reader(control.fileno())
            continue
        if not message:
            raise ProviderError("the festival sandbox exited")
        return message, fds


class FestivalServer:
    """A `festival --server` process on a free local port, started and restarted on demand."""

    def __init__(self, voice: str, network_namespace: NetworkNamespace = "auto") -> None:
        self.voice = voice
        self.network_namespace = network_namespace
        self._password = secrets.token_hex(16)
        self._sandbox: _Sandbox | None = None
        self._no_namespace = ""  # why this machine has none ("auto" asks only once)
        self._isolated = False
        self._port = 0
        self._lock = asyncio.Lock()
        self._drains: set[asyncio.Task[None]] = set()  # logs of servers and their last children

    @property
    def pid(self) -> int | None:
        """The festival server's own pid."""
        return self._sandbox.festival_pid if self._sandbox else None

    @property
    def isolated(self) -> bool:
        """Whether the running server is in a network namespace of its own."""
        return self._sandbox is not None and self._isolated

    def _alive(self) -> bool:
        return self._sandbox is not None and self._sandbox.process.returncode is None

    def _setup(self, port: int) -> bytes:
        lines = [
            f"(set! server_port {port})",
            f"(set! server_passwd {scheme_string(self._password)})",
            # Festival names a 127.0.0.1 peer "localhost" itself, before it matches this list.
            '(set! server_access_list \'("localhost"))',
            f"(set! server_max_client {MAX_CLIENTS})",
            "(set! server_log_file t)",
            f"(voice_{self.voice})",
            "(Parameter.set 'Wavefiletype 'riff)",
            # Synthesising once here pages the voice's data into the parent, so forks share it.
            f"(utt.synth (Utterance Text {scheme_string(WARM_TEXT)}))",
        ]
        return "".join(f"{line}\n" for line in lines).encode()

    async def ensure_running(self) -> int:
        """Returns the port of a live server, starting one if there is none."""
        async with self._lock:
            if not self._alive():
                await self._start()
            return self._port

    async def _start(self) -> None:
        await self._stop()
        if shutil.which("festival") is None:
            raise ProviderError("festival is not installed: apt-get install festival festvox-ru")
        problem = ""
        attempts = PORT_ATTEMPTS
        while attempts:
            attempts -= 1
            port = _free_port()
            isolated = self.network_namespace != "off" and not self._no_namespace
            try:
                sandbox = await _Sandbox.launch(port, isolated, self._setup(port))
            except _NoNamespace as exc:
                self._refuse_or_share(str(exc))
                attempts += 1  # not a lost port race
                continue
            try:
                output = await asyncio.wait_for(_read_until_ready(sandbox.output), START_TIMEOUT_S)
            except TimeoutError:
                output = [f"no '{READY_MARK}' within {START_TIMEOUT_S:.0f} s"]
            if output and READY_MARK in output[-1]:
                self._sandbox, self._port, self._isolated = sandbox, port, isolated
                drain = asyncio.create_task(_log_output(sandbox))
                self._drains.add(drain)
                drain.add_done_callback(self._drains.discard)
                where = "its own network" if isolated else "all interfaces, password only"
                log.info("festival server %d started on port %d (%s)", self.pid, port, where)
                return
            await sandbox.stop()  # it usually exited already, after an error
            sandbox.output_pipe.close()
            problem = " | ".join(line for line in output if line)[-500:]
            if "bind failed" not in problem:  # only a lost port race is worth another try
                break
        raise ProviderError(f"festival server did not start (voice {self.voice}): {problem}")

    def _refuse_or_share(self, why: str) -> None:
        if self.network_namespace == "required":
            raise ProviderError(
                f"festival: {why}; the server would be reachable from other hosts. Allow user "
                "namespaces (sysctl, container seccomp profile) or set network_namespace to auto"
            )
        self._no_namespace = why
        log.warning(
            "festival: %s; its server will listen on all interfaces, guarded by a password only",
            why,
        )

    async def open(self) -> FestivalChild:
        """A connected, authenticated child that knows its pid."""
        await self.ensure_running()
        pid = self.pid
        try:
            return await self._connect()
        except (OSError, TimeoutError, ProviderError, FestivalProtocolError) as exc:
            # The server died or hangs: replace it and try once more.
            log.warning("festival server %s failed (%r); restarting it", pid, exc)
            await self.restart(pid)
            await self.ensure_running()
            return await self._connect()

    async def raw_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the server that has not yet sent the password."""
        sandbox = self._sandbox
        if sandbox is None:
            raise ProviderError("festival server is not running")
        return await asyncio.open_connection(sock=await sandbox.connect())

    async def _connect(self) -> FestivalChild:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            reader, writer = await self.raw_connection()
            child = FestivalChild(reader, writer)
            try:
                writer.write(f"{self._password}\n".encode())
                await child.identify()
            except BaseException:
                child.kill()
                raise
            return child

    async def restart(self, pid: int | None) -> None:
        """Kills server `pid` (dead or wedged) unless a concurrent call already replaced it."""
        async with self._lock:
            if self.pid == pid:
                await self._stop()

    async def close(self) -> None:
        async with self._lock:
            await self._stop()
            for drain in list(self._drains):
                drain.cancel()

    async def _stop(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            await sandbox.stop()
            log.info("festival server %d stopped", sandbox.festival_pid)


async def _read_until_ready(stream: asyncio.StreamReader) -> list[str]:
    """The server's output up to its ready line (last) or up to its exit."""
    lines: list[str] = []
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").strip())
        if READY_MARK in lines[-1]:
            break
    return lines


async def _log_output(sandbox: _Sandbox) -> None:
    """Drains the server's log (a full pipe would block it); SIOD errors become warnings.

    It ends when the server and its last child have exited (or at `close`).
    """
    try:
        while line := await sandbox.output.readline():
            text = line.decode(errors="replace").rstrip()
            log.log(logging.WARNING if "ERROR" in text else logging.DEBUG, "festival: %s", text)
    finally:
        sandbox.output_pipe.close()


async def _kill(process: asyncio.subprocess.Process, grace_s: float = 0.0) -> None:
    """Kills `process` unless it exits by itself within `grace_s`, and reaps it."""
    # Killing a process that has just exited would reap it behind asyncio's child watcher.
    if grace_s:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace_s)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
