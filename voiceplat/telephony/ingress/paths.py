"""Which ingress a WebSocket on the robot's port gets, by the path of its request.

mod_audio_fork (FreeSWITCH) is the default: any path no ingress claims, `/` included, so nothing
that worked before changes. Each other WebSocket ingress claims one path (set in config.json) and
names the subprotocols its peer may offer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
from voiceplat.telephony.ingress.twilio.channel import TwilioChannel
from voiceplat.telephony.ingress.web import PATH as WEB_PATH
from voiceplat.telephony.ingress.web import WebChannel
from voiceplat.telephony.media_auth import MediaAuth


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
    verdict = twilio_auth(context.robot.config.twilio, connection.request)
    return TwilioChannel(
        connection, verdict=verdict, lead_ms=context.lead_ms, chunk_ms=context.chunk_ms
    )


def _asterisk_ws(connection: CallConnection, context: IngressContext) -> CallChannel:
    request = connection.request
    settings = context.robot.config.asterisk_ws
    return AsteriskWsChannel(
        connection,
        params=query_params(request.path) if request else {},
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


def media_auth(robot: Robot) -> MediaAuth | None:
    """The handshake check of `media_auth` for this robot's port; None when it is off."""
    settings = robot.config.media_auth
    if not settings.enabled:
        return None
    config, paths = robot.config, ingress_paths(robot)
    names = {WEB_PATH: "web"}
    own: set[str] = set()  # paths whose ingress checks credentials of its own
    for name, path, has_own in (
        (
            "twilio",
            config.twilio.path,
            bool(config.twilio.auth_token_env or config.twilio.token_env),
        ),
        ("asterisk_ws", config.asterisk_ws.path, config.asterisk_ws.password_env is not None),
        ("audio_stream", config.audio_stream.path, config.audio_stream.token_env is not None),
    ):
        if path in paths:
            names[path] = name
            if has_own:
                own.add(path)

    def ingress_of(path: str) -> str | None:
        return None if path in own else names.get(path, "audio_fork")

    return MediaAuth(settings, robot.env, ingress_of)


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
