"""A stand-in for FreeSWITCH's event socket (mod_event_socket, inbound mode) on 127.0.0.1.

It speaks the documented text protocol: `auth/request` on connect, `auth <password>`,
`event plain ...`, `filter <header> <value>`, `api` (answered by `api/response`), `bgapi`
(answered at once, the result later as a BACKGROUND_JOB event), `exit`; events go to each
authenticated connection that subscribed to them and whose filters match. What an `api` command
does is the `api` handler's business (the simulator's mod_audio_stream peer, or a test).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field

from voiceplat.telephony.ingress.audio_stream.esl import encode_event, encode_message

ApiHandler = Callable[[str], str]
"""`api` command line (without `api `) -> its output, e.g. "+OK\\n" or "-ERR no such channel\\n"."""


def command_not_found(line: str) -> str:
    return f"-ERR {line.split(' ')[0]} Command not found!\n"


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    authed: bool = False
    events: set[str] = field(default_factory=set)
    filters: list[tuple[str, str]] = field(default_factory=list)

    def wants(self, headers: dict[str, str]) -> bool:
        name = headers.get("Event-Name", "")
        if not self.authed or not ({"ALL", name} & self.events):
            return False
        if name == "CUSTOM" and "ALL" not in self.events:
            if headers.get("Event-Subclass") not in self.events:
                return False
        return all(headers.get(key) == value for key, value in self.filters)


class EslServer:
    def __init__(self, password: str = "ClueCon", api: ApiHandler = command_not_found) -> None:
        self.password = password
        self.api = api
        self.commands: list[str] = []
        """Every command line received after authentication, in order."""
        self.auth_failures = 0
        self._connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for connection in list(self._connections):
            connection.writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def fire(self, headers: dict[str, str], body: str = "") -> int:
        """Sends an event to every connection that wants it; returns how many got it."""
        data = encode_event(headers, body)
        sent = 0
        for connection in list(self._connections):
            if connection.wants(headers):
                connection.writer.write(data)
                sent += 1
        return sent

    @property
    def connections(self) -> int:
        return sum(1 for connection in self._connections if connection.authed)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer)
        self._connections.add(connection)
        writer.write(encode_message({"Content-Type": "auth/request"}))
        buffer = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
                while b"\n\n" in buffer:
                    raw, buffer = buffer.split(b"\n\n", 1)
                    line = raw.decode(errors="replace").strip()
                    if line and not self._command(connection, line):
                        return
        except (OSError, asyncio.CancelledError):
            return
        finally:
            self._connections.discard(connection)
            writer.close()

    def _reply(self, connection: _Connection, text: str, **extra: str) -> None:
        headers = {"Content-Type": "command/reply", "Reply-Text": text, **extra}
        connection.writer.write(encode_message(headers))

    def _command(self, connection: _Connection, line: str) -> bool:
        """Carries out one command; False: close the connection."""
        verb, _, rest = line.partition(" ")
        if not connection.authed:
            if verb == "auth" and rest == self.password:
                connection.authed = True
                self._reply(connection, "+OK accepted")
                return True
            self.auth_failures += 1
            self._reply(connection, "-ERR invalid")
            connection.writer.write(
                encode_message({"Content-Type": "text/disconnect-notice"}, "Disconnected.\n")
            )
            return False
        self.commands.append(line)
        if verb == "api":
            connection.writer.write(
                encode_message({"Content-Type": "api/response"}, self.api(rest))
            )
        elif verb == "bgapi":
            job = str(uuidlib.uuid4())
            self._reply(connection, f"+OK Job-UUID: {job}", **{"Job-UUID": job})
            result = self.api(rest)
            event = {"Event-Name": "BACKGROUND_JOB", "Job-UUID": job, "Job-Command": rest}
            if connection.wants(event):
                connection.writer.write(encode_event(event, result))
        elif verb == "event":
            names = rest.split()
            if names[:1] not in (["plain"], ["json"], ["xml"]):
                self._reply(connection, "-ERR invalid event format")
            else:
                connection.events.update(names[1:])
                self._reply(connection, f"+OK event listener enabled {names[0]}")
        elif verb == "filter":
            header, _, value = rest.partition(" ")
            connection.filters.append((header, value))
            self._reply(connection, f"+OK filter added. [{header}]=[{value}]")
        elif verb == "exit":
            self._reply(connection, "+OK bye")
            connection.writer.write(
                encode_message({"Content-Type": "text/disconnect-notice"}, "Disconnected.\n")
            )
            return False
        else:
            self._reply(connection, "-ERR command not found")
        return True
