"""Plain HTTP on the robot's own port (requests without `Upgrade: websocket`), so FreeSWITCH,
Prometheus and a load balancer need one port:

- `GET /metrics`: Prometheus text format (observability/metrics.py);
- `GET /health`: 200 `ok` while the process runs (liveness);
- `GET /ready`: 200 when the robot should get calls, else 503; JSON either way, with the
  reasons and each store's state (observability/readiness.py);
- `GET /live`: the calls in progress with their turns, JSON (a list of `LiveCall`). It holds
  caller numbers and transcripts: with `VOICEPLAT_WEB_TOKEN` in the robot's env it wants
  `Authorization: Bearer <token>` (or Basic with the token as password), else it answers
  clients on this machine (loopback) only;
- `/` and `/web` are the WebSocket endpoints: 426 without the upgrade; anything else 404.
  Other methods get 405 (the routes only read).

Each answer closes its connection (one request per connection), like websockets' own errors.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import http
import ipaddress
import json
from collections.abc import Callable

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from voiceplat.observability.metrics import render
from voiceplat.observability.readiness import readiness
from voiceplat.robot import Robot
from voiceplat.storage.live import LiveCalls
from voiceplat.storage.recorder import Recorder

TOKEN_VARIABLE = "VOICEPLAT_WEB_TOKEN"
WEBSOCKET_PATHS = ("/", "/web")
JSON = "application/json"


def response(
    status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8", **headers: str
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    code = http.HTTPStatus(status)
    fields = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *((name.replace("_", "-"), value) for name, value in headers.items()),
        ]
    )
    return Response(code.value, code.phrase, fields, data)


def json_response(status: int, value: object) -> Response:
    return response(status, json.dumps(value, ensure_ascii=False), JSON)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def presented_token(request: Request) -> str | None:
    """The token in `Authorization: Bearer <t>` or `Basic base64(user:<t>)`."""
    value = request.headers.get("Authorization", "")
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class RobotHttp:
    """The routes of one robot's port. `accepting()`: whether the server takes calls now."""

    def __init__(
        self,
        robot: Robot,
        recorder: Recorder,
        live: LiveCalls | None,
        accepting: Callable[[], bool],
    ) -> None:
        self.robot = robot
        self.recorder = recorder
        self.live = live
        self.accepting = accepting

    def __call__(self, request: Request, peer: str | None) -> Response:
        path = request.path.split("?", 1)[0]
        if request.method != "GET":
            return response(405, f"{request.method} is not allowed here.\n", Allow="GET")
        if path == "/metrics":
            body, content_type = render()
            return response(200, body, content_type)
        if path == "/health":
            return response(200, "ok\n")
        if path == "/ready":
            state = readiness(self.robot, self.recorder, accepting=self.accepting())
            return json_response(200 if state.ready else 503, state.model_dump())
        if path == "/live" and self.live is not None:
            refused = self._refuse_live(request, peer)
            if refused is not None:
                return refused
            return json_response(200, [c.model_dump(mode="json") for c in self.live.calls()])
        if path in WEBSOCKET_PATHS:
            return response(426, "This is a WebSocket endpoint.\n", Upgrade="websocket")
        return response(404, f"Not found: {path}\n")

    def _refuse_live(self, request: Request, peer: str | None) -> Response | None:
        token = self.robot.env.get(TOKEN_VARIABLE) or ""
        if token:
            given = presented_token(request)
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                return None
            return response(
                401,
                "/live wants Authorization: Bearer <VOICEPLAT_WEB_TOKEN>\n",
                WWW_Authenticate='Bearer realm="voiceplat"',
            )
        if is_loopback(peer):
            return None
        return response(
            403,
            "/live answers this machine only; set VOICEPLAT_WEB_TOKEN in the robot's env "
            "to read it from elsewhere\n",
        )
