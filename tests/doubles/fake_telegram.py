"""`FakeTelegram`: a Telegram Bot API server on 127.0.0.1 with the real API's request shapes.

Requests are `POST /bot<token>/<method>` with JSON, urlencoded or multipart/form-data parameters;
answers are the API's envelope: {"ok": true, "result": Message} or {"ok": false, "error_code",
"description", "parameters"?}. What the real API refuses, it refuses the same way: a wrong token
(401 Unauthorized), an unknown method (404 Not Found), another chat (400 chat not found), an
empty or too long text (400), a sendDocument without a file. Tests script what the next requests
get (`fail_next(429, retry_after=3)`, `fail_next(500)`, `hang_next()`) and read what arrived
(`received`: every request; `delivered`: the messages the chat got). Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "123456789:AAFakeTokenForTests_x-yz"
CHAT_ID = "-1001234567890"
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Received:
    method: str
    token: str | None
    """The token in the path; None when the path is not /bot<token>/<method>."""
    content_type: str
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    status: int = 0
    """What the fake answered (0: it hung)."""


@dataclass(frozen=True)
class _Scripted:
    status: int | None  # None: hang
    retry_after: int | None = None


_DESCRIPTIONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    mime = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in mime.iter_parts() if isinstance(mime, MimeMessage) else []:
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(data, bytes):
            continue
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8")
        else:
            files[name] = Upload(filename, part.get_content_type(), data)
    return fields, files


def _parameters(
    content_type: str, body: bytes, query: str
) -> tuple[dict[str, str], dict[str, Upload]]:
    fields = {k: v[-1] for k, v in parse_qs(query).items()}
    files: dict[str, Upload] = {}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" and body:
        data = json.loads(body)
        fields.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()})
    elif kind == "application/x-www-form-urlencoded":
        fields.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
    elif kind == "multipart/form-data":
        more, files = _multipart(content_type, body)
        fields.update(more)
    return fields, files


class FakeTelegram:
    def __init__(self, token: str = TOKEN, chat_id: str = CHAT_ID) -> None:
        self.token = token
        self.chat_id = chat_id
        self.received: list[Received] = []
        self.delivered: list[Received] = []
        self._script: list[_Scripted] = []
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._next_id = 1

    @property
    def url(self) -> str:
        """The API base (TG_API_URL)."""
        assert self._server is not None, "the server has not been started"
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def fail_next(self, status: int, *, retry_after: int | None = None) -> None:
        """The next unscripted request gets this error (429 with parameters.retry_after)."""
        self._script.append(_Scripted(status, retry_after))

    def hang_next(self) -> None:
        """The next request is read and never answered."""
        self._script.append(_Scripted(None))

    async def wait_received(self, count: int) -> list[Received]:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return self.received

    async def wait_delivered(self, count: int) -> list[Received]:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.delivered) >= count)
        return self.delivered

    async def __aenter__(self) -> FakeTelegram:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            _, target, _ = request_line.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, answer = await self._answer(target, headers.get("content-type", ""), body)
            if status:
                payload = json.dumps(answer, ensure_ascii=False).encode()
                writer.write(
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer(self, target: str, content_type: str, body: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        bot, _, method = parts.path.strip("/").partition("/")
        fields, files = _parameters(content_type, body, parts.query)
        token = bot.removeprefix("bot") if bot.startswith("bot") else None
        request = Received(method, token, content_type, fields, files)
        async with self._changed:
            self.received.append(request)
            self._changed.notify_all()
        scripted = self._script.pop(0) if self._script else None
        if scripted is not None:
            if scripted.status is None:
                await self._release.wait()
                return 0, None
            request.status = scripted.status
            return scripted.status, _error(scripted.status, scripted.retry_after)
        request.status, answer = self._method(request)
        if request.status == 200:
            async with self._changed:
                self.delivered.append(request)
                self._changed.notify_all()
        return request.status, answer

    def _method(self, request: Received) -> tuple[int, Any]:
        if request.token is None:
            return 404, _error(404)
        if request.token != self.token:
            return 401, _error(401)
        method = request.method.lower()
        if method not in ("sendmessage", "senddocument"):
            return 404, _error(404)
        if request.fields.get("chat_id") != self.chat_id:
            return 400, _error(400, description="Bad Request: chat not found")
        message: dict[str, Any] = {
            "message_id": self._next_id,
            "date": int(time.time()),
            "chat": {"id": int(self.chat_id), "type": "supergroup", "title": "Звонки"},
        }
        if method == "sendmessage":
            text = request.fields.get("text", "")
            if not text.strip():
                return 400, _error(400, description="Bad Request: message text is empty")
            if _units(text) > MESSAGE_LIMIT:
                return 400, _error(400, description="Bad Request: message is too long")
            message["text"] = text
        else:
            document = request.files.get("document")
            if document is None:
                return 400, _error(
                    400, description="Bad Request: there is no document in the request"
                )
            caption = request.fields.get("caption", "")
            if _units(caption) > CAPTION_LIMIT:
                return 400, _error(400, description="Bad Request: message caption is too long")
            message["document"] = {
                "file_name": document.filename,
                "mime_type": document.content_type,
                "file_id": f"file-{self._next_id}",
                "file_unique_id": f"unique-{self._next_id}",
                "file_size": len(document.data),
            }
            if caption:
                message["caption"] = caption
        self._next_id += 1
        return 200, {"ok": True, "result": message}


def _error(status: int, retry_after: int | None = None, *, description: str = "") -> dict[str, Any]:
    texts = {401: "Unauthorized", 404: "Not Found", **_DESCRIPTIONS}
    text = description or texts.get(status, "Bad Request")
    answer: dict[str, Any] = {"ok": False, "error_code": status, "description": text}
    if retry_after is not None:
        answer["description"] = f"Too Many Requests: retry after {retry_after}"
        answer["parameters"] = {"retry_after": retry_after}
    return answer
