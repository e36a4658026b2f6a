"""Which ingress a WebSocket on the robot's port gets, by the path of its request.

mod_audio_fork (FreeSWITCH) is the default: any path no ingress claims, `/` included, so nothing
that worked before changes. Each other WebSocket ingress claims one path (set in config.json) and
names the subprotocols its peer may offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from websockets.http11 import Request

from voiceplat.robot import Robot
from voiceplat.storage.live import LiveCalls
from voiceplat.telephony.channel import CallChannel
from voiceplat.telephony.connection import CallConnection
from voiceplat.telephony.ingress.asterisk_ws.channel import AsteriskWsChannel
from voiceplat.telephony.ingress.asterisk_ws.codec import SUBPROTOCOL as ASTERISK_WS_SUBPROTOCOL
from voiceplat.telephony.ingress.asterisk_ws.codec import query_params
from voiceplat.telephony.ingress.audio_fork.channel import AudioForkChannel
from voiceplat.telephony.ingress.audio_fork.codec import SUBPROTOCOL as AUDIO_FORK_SUBPROTOCOL
from voiceplat.telephony.ingress.audio_stream.channel import AudioStreamChannel
from voiceplat.telephony.ingress.twilio.auth import check_request as twilio_auth
from voiceplat.telephony.ingress.twilio.auth import handshake_check as twilio_handshake
from voiceplat.telephony.ingress.twilio.channel import TwilioChannel
from voiceplat.telephony.ingress.web import PATH as WEB_PATH
from voiceplat.telephony.ingress.web import WebChannel
from voiceplat.telephony.media_auth import (
    BASIC_REALM,
    BEARER_REALM,
    REALM,
    Guard,
    HandshakeAuth,
    MediaAuth,
)


@dataclass(frozen=True, slots=True)
class IngressContext:
    """What a channel factory may use besides the connection."""

    robot: Robot
    live: LiveCalls | None
    """The process's live calls (a sink of the recorder): the talk page's transcript."""

    @property
    def lead_ms(self) -> int:
        return self.robot.config.playout.lead_ms

    @property
    def chunk_ms(self) -> int:
        return self.robot.config.playout.chunk_ms


ChannelFactory = Callable[[CallConnection, IngressContext], CallChannel]


def _audio_fork(connection: CallConnection, context: IngressContext) -> CallChannel:
    return AudioForkChannel(connection, lead_ms=context.lead_ms, chunk_ms=context.chunk_ms)


def _web(connection: CallConnection, context: IngressContext) -> CallChannel:
    return WebChannel(
        connection,
        robot=context.robot.name,
        live=context.live,
        lead_ms=context.lead_ms,
        chunk_ms=context.chunk_ms,
    )


def _twilio(connection: CallConnection, context: IngressContext) -> CallChannel:
    # The handshake hook (`media_auth` below) has refused bad credentials already; the verdict
    # still says whether the start message must bring customParameters.token.
    verdict = twilio_auth(context.robot.config.twilio, connection.request, context.robot.env)
    return TwilioChannel(
        connection, verdict=verdict, lead_ms=context.lead_ms, chunk_ms=context.chunk_ms
    )


def _asterisk_ws(connection: CallConnection, context: IngressContext) -> CallChannel:
    request = connection.request
    settings = context.robot.config.asterisk_ws
    return AsteriskWsChannel(
        connection,
        params=query_params(request.path) if request else {},
        # (a second look: the handshake hook has refused bad credentials with a 401 already)
        refused=settings.refusal(
            request.headers.get("Authorization") if request else None, context.robot.env
        ),
        lead_ms=context.lead_ms,
        chunk_ms=context.chunk_ms,
    )


def _audio_stream(connection: CallConnection, context: IngressContext) -> CallChannel:
    settings, env = context.robot.config.audio_stream, context.robot.env
    channel = AudioStreamChannel(
        connection,
        settings=settings,
        lead_ms=context.lead_ms,
        esl_password=settings.esl_password(env),
    )
    request = connection.request
    # (a second look: the handshake hook has refused bad credentials with a 401 already)
    refused = settings.refusal(request.headers.get("Authorization") if request else None, env)
    if refused is not None:
        channel.refuse(refused)
    return channel


def ingress_paths(robot: Robot) -> dict[str, ChannelFactory]:
    """The robot's WebSocket ingresses other than mod_audio_fork, by request path."""
    paths: dict[str, ChannelFactory] = {WEB_PATH: _web}
    if robot.config.twilio.enabled:
        paths[robot.config.twilio.path] = _twilio
    if robot.config.asterisk_ws.enabled:
        paths[robot.config.asterisk_ws.path] = _asterisk_ws
    if robot.config.audio_stream.enabled:
        paths[robot.config.audio_stream.path] = _audio_stream
    return paths


def _own_guards(robot: Robot, paths: dict[str, ChannelFactory]) -> dict[str, Guard]:
    """The ingresses that check credentials of their own, by path: each check runs in the
    handshake, so a refused peer gets the same 401 as `media_auth`'s, before any call exists."""
    config, env = robot.config, robot.env

    def authorization(request: Request) -> str | None:
        return request.headers.get("Authorization")

    guards = {}
    if config.twilio.auth_token_env or config.twilio.token_env:
        twilio = config.twilio
        guards[twilio.path] = Guard(
            "twilio", lambda request: twilio_handshake(twilio, request, env), REALM
        )
    if config.asterisk_ws.password_env is not None:
        asterisk = config.asterisk_ws
        guards[asterisk.path] = Guard(
            "asterisk_ws", lambda request: asterisk.check(authorization(request), env), BASIC_REALM
        )
    if config.audio_stream.token_env is not None:
        stream = config.audio_stream
        guards[stream.path] = Guard(
            "audio_stream", lambda request: stream.check(authorization(request), env), BEARER_REALM
        )
    return {path: guard for path, guard in guards.items() if path in paths}


def media_auth(robot: Robot) -> HandshakeAuth | None:
    """The handshake check of this robot's port: each ingress's own credentials where it has
    them, `media_auth`'s on every other path; None when neither is configured."""
    paths = ingress_paths(robot)
    own = _own_guards(robot, paths)
    settings = robot.config.media_auth
    if not own and not settings.enabled:
        return None
    names = {WEB_PATH: "web"}
    names.update(
        (path, name)
        for name, path in (
            ("twilio", robot.config.twilio.path),
            ("asterisk_ws", robot.config.asterisk_ws.path),
            ("audio_stream", robot.config.audio_stream.path),
        )
        if path in paths
    )
    shared = MediaAuth(settings, robot.env, lambda path: names.get(path, "audio_fork"))

    def guard_of(path: str) -> Guard | None:
        if path in own:
            return own[path]
        return shared.guard_of(path) if settings.enabled else None

    return HandshakeAuth(guard_of)


def subprotocols(robot: Robot) -> tuple[str, ...]:
    """Every subprotocol an ingress of this robot accepts (the first one offered is selected)."""
    names = [AUDIO_FORK_SUBPROTOCOL]
    if robot.config.asterisk_ws.enabled:
        names.append(ASTERISK_WS_SUBPROTOCOL)
    return tuple(names)


def request_path(connection: CallConnection) -> str:
    return connection.request.path.split("?")[0] if connection.request else "/"


def channel_for(
    connection: CallConnection, context: IngressContext, paths: dict[str, ChannelFactory]
) -> CallChannel:
    factory = paths.get(request_path(connection), _audio_fork)
    return factory(connection, context)


def secret_problems(robot: Robot) -> list[str]:
    """`voiceplat check`: an enabled ingress (or `media_auth`) names a variable for its password
    or token that the robot's env lacks (every connection would be refused), or `tls` names a
    file that is not there."""
    config = robot.config
    named: list[tuple[bool, str, str | None]] = [
        (config.asterisk_ws.enabled, "asterisk_ws.password_env", config.asterisk_ws.password_env),
        (config.audio_stream.enabled, "audio_stream.token_env", config.audio_stream.token_env),
        (
            config.audio_stream.enabled,
            "audio_stream.esl_password_env",
            config.audio_stream.esl_password_env,
        ),
        (config.twilio.enabled, "twilio.auth_token_env", config.twilio.auth_token_env),
        (config.twilio.enabled, "twilio.token_env", config.twilio.token_env),
    ]
    found = [
        f"{key}: the variable {variable} is not set (in {robot.directory / '.env'} or the "
        "environment)"
        for enabled, key, variable in named
        if enabled and variable and not robot.env.get(variable)
    ]
    found += config.media_auth.problems(robot.env)
    return found + (config.tls.problems(robot.directory) if config.tls is not None else [])
