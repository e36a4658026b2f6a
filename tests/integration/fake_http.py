"""A scripted HTTP/1.1 server on 127.0.0.1 for the cloud providers' tests (raw asyncio, TLS optional).

Each request gets the next responder of the script and the connection is closed after it, so a
test controls exactly what every attempt sees and can inspect every request afterwards. A request
beyond the script is answered 418 (not retryable), which makes a test fail loudly.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}

    def json(self) -> Any:
        return json.loads(self.body)


Writer = asyncio.StreamWriter
Responder = Callable[[Request, Writer], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> Request:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


class FakeServer:
    def __init__(self, *script: Responder, tls: ssl.SSLContext | None = None) -> None:
        self.script = list(script)
        self.requests: list[Request] = []
        self.release = asyncio.Event()  # lets hanging responders go at teardown
        self.tls = tls
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        assert self._port is not None, "the server has not been started"
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await read_request(reader)
            self.requests.append(request)
            responder = self.script.pop(0) if self.script else error(418, "no responder left")
            await responder(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()


# Responders

REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}


def _head(status: int, content_type: str, length: int | None = None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
        f"{size}\r\nConnection: close\r\n\r\n"
    ).encode()


async def write_chunk(writer: Writer, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


def body(status: int, payload: bytes | str | dict | list, content_type: str | None = None):
    """A whole response with Content-Length; dicts and lists are sent as JSON."""
    if isinstance(payload, dict | list):
        data = json.dumps(payload, ensure_ascii=False).encode()
        content_type = content_type or "application/json"
    else:
        data = payload.encode() if isinstance(payload, str) else payload
        content_type = content_type or "application/octet-stream"

    async def respond(request: Request, writer: Writer) -> None:
        writer.write(_head(status, content_type, len(data)) + data)
        await writer.drain()

    return respond


def error(status: int, payload: bytes | str | dict) -> Responder:
    return body(status, payload, "application/json" if isinstance(payload, dict) else "text/plain")


def chunked(
    pieces: list[bytes], content_type: str = "application/octet-stream", *, end: str = "complete"
) -> Responder:
    """Chunked 200 response; `end`: 'complete', 'drop' (close mid-body) or 'hang' (until release)."""

    async def respond(request: Request, writer: Writer) -> None:
        writer.write(_head(200, content_type))
        await writer.drain()
        for piece in pieces:
            await write_chunk(writer, piece)
        if end == "complete":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif end == "hang":
            await asyncio.get_running_loop().create_future()  # until cancelled at teardown

    return respond


def drop() -> Responder:
    """Reads the request and closes the connection without an answer (a network failure)."""

    async def respond(request: Request, writer: Writer) -> None:
        return

    return respond


def hang() -> Responder:
    """Reads the request, then answers nothing."""

    async def respond(request: Request, writer: Writer) -> None:
        await asyncio.get_running_loop().create_future()

    return respond


def sse(events: list[Any], *, end: str = "complete") -> Responder:
    """text/event-stream of `data:` events (dicts as JSON), each split across two chunks."""
    pieces = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        encoded = f"data: {data}\n\n".encode()
        middle = len(encoded) // 2
        pieces += [encoded[:middle], encoded[middle:]]
    return chunked(pieces, "text/event-stream", end=end)


# TLS material for tests of `ca_bundle` and mutual TLS (made with the openssl command)


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def make_certs(folder: Path) -> Certs:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=voiceplat test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    for name, extensions in (
        ("server", ["subjectAltName=IP:127.0.0.1", "extendedKeyUsage=serverAuth"]),
        ("client", ["extendedKeyUsage=clientAuth"]),
    ):
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", *extensions]
        (folder / f"{name}.ext").write_text("\n".join(lines) + "\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    return Certs(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
