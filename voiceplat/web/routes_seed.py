"""The blueprint's seed services on a robot's own providers: speech to text, text to speech, and
one voice turn (audio in, the robot's answer out, as audio and text).

    POST /api/v1/stt            multipart `file` (+ `robot`, `language`) -> {"text", "language", "ms"}
    POST /api/v1/tts            {"text", "robot"?}                      -> audio/wav, 8 kHz mono
    POST /api/v1/voice/process  multipart `file` (+ `robot`)            -> {"text", "answer", ...}

`robot` (query parameter or form field) names one of the service's robots; the first one by
default. Its providers start on first use (`voiceplat serve --web-port` has started them already:
`mark_started`). The answer is the robot's text dialog (prompt, knowledge, forms, tools), with its
webhooks answered by the dry-run stand-in: a request here never books a visit in a real CRM.
Limits (WebSettings): upload size, audio length, requests a minute per client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.providers.base import Kind, ProviderError
from voiceplat.robot import Robot
from voiceplat.sessions.timeouts import session_timeout
from voiceplat.sessions.turn_audio import render
from voiceplat.web.audio_upload import decode_audio, read_upload
from voiceplat.web.context import WebContext, get_context
from voiceplat.web.rate_limit import RateLimiter

if TYPE_CHECKING:
    from voiceplat.dialog.text_dialog import TextReply

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["seed services"])

STATE_KEY = "seed"
MAX_TTS_BODY_BYTES = 16 * 1024
"""A /tts body: 1000 characters of text, JSON-escaped, and the robot's name fit with room."""
ANSWER_TIMEOUT_S = 120.0
"""Bound on one whole answer (tool calls included) when the LLM does not bound its own work."""
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "robot": {"type": "string"},
                        "language": {"type": "string"},
                    },
                }
            },
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@dataclass
class SeedState:
    """Per service: the rate limiter and which robots' providers have been started."""

    limiter: RateLimiter
    started: set[str] = field(default_factory=set)
    marked: set[str] = field(default_factory=set)
    """Started by someone else (`serve`), who closes them."""
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


def seed_state(context: WebContext) -> SeedState:
    state = context.extra.get(STATE_KEY)
    if state is None:
        state = SeedState(RateLimiter(context.settings.rate_per_minute))
        if context.in_process_live is not None:
            # Inside `voiceplat serve` (its live calls are ours): serve has started its robot.
            state.started = set(context.robots)
            state.marked = set(context.robots)
        context.extra[STATE_KEY] = state
    assert isinstance(state, SeedState)
    return state


def mark_started(context: WebContext, *names: str) -> None:
    """These robots' providers run already (started by `serve`): the seed services use them as is."""
    state = seed_state(context)
    state.started.update(names)
    state.marked.update(names)


async def close_started(context: WebContext) -> None:
    """Closes the providers this module started (the app's shutdown; `mark_started` ones are
    their starter's to close)."""
    state = context.extra.get(STATE_KEY)
    if isinstance(state, SeedState):
        for name in sorted(state.started - state.marked):
            await context.robots[name].aclose()
        state.started &= state.marked


Context = Annotated[WebContext, Depends(get_context)]


def rate_limited(request: Request, context: Context) -> None:
    """429 with Retry-After when this client has used up its requests."""
    limiter = seed_state(context).limiter
    client = request.client.host if request.client else "unknown"
    wait_s = limiter.take(client)
    if wait_s > 0:
        raise HTTPException(
            429,
            f"too many requests: at most {limiter.per_minute:g} a minute per client; "
            f"retry in {wait_s:.0f} s",
            headers={"Retry-After": limiter.retry_after(wait_s)},
        )


Limited = Depends(rate_limited)


def pick_robot(context: WebContext, name: str | None) -> Robot:
    """The named robot, the first by default; 404 for a name the service does not have."""
    if name is None:
        if not context.robots:
            raise HTTPException(404, "the web service has no robots")
        name = next(iter(context.robots))
    return context.robot(name)


async def started_robot(context: WebContext, name: str | None, *needs: Kind) -> Robot:
    """The named robot (the first by default) with its providers started; 409 when it lacks one."""
    robot = pick_robot(context, name)
    name = name if name is not None else next(iter(context.robots))
    missing = [kind for kind in needs if kind not in robot.providers]
    if missing:
        raise HTTPException(
            409,
            f"robot {name!r} ({robot.config.mode} mode) has no {', '.join(missing).upper()} "
            "provider for this service",
        )
    state = seed_state(context)
    if name not in state.started:
        async with state.locks.setdefault(name, asyncio.Lock()):
            if name not in state.started:
                try:
                    await robot.start()
                except Exception as exc:
                    log.exception("robot %s failed to start", name)
                    raise HTTPException(
                        502, f"robot {name!r}: its providers failed to start: {exc}"
                    ) from None
                state.started.add(name)
    return robot


@contextlib.asynccontextmanager
async def provider_errors(what: str, timeout_s: float | None) -> AsyncIterator[None]:
    """A provider's failure as 502 with its message (504 when it gave nothing in time)."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except HTTPException:
        raise
    except TimeoutError:
        raise HTTPException(504, f"{what} gave no answer in {timeout_s:g} s") from None
    except ProviderError as exc:
        raise HTTPException(502, f"{what} failed: {exc}") from None
    except Exception as exc:  # a provider's bug must not come out as a 500 with a traceback
        log.exception("%s failed", what)
        raise HTTPException(502, f"{what} failed: {type(exc).__name__}: {exc}") from None


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def wav_bytes(audio: bytes, rate: int = CALL_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(audio)
    return out.getvalue()


async def _uploaded_audio(request: Request, context: WebContext) -> tuple[Pcm, dict[str, str]]:
    settings = context.settings
    upload = await read_upload(request, settings.max_upload_bytes)
    # Decoding and resampling a minute of audio is CPU work: off the event loop.
    pcm = await asyncio.to_thread(decode_audio, upload.data, settings.max_audio_s)
    return pcm, upload.fields


async def _transcribe(robot: Robot, audio: Pcm, language: str | None) -> tuple[str, str | None]:
    asr = robot.asr
    language = language or asr.settings.language
    async with provider_errors(f"ASR ({asr.name})", session_timeout(asr)):
        transcript = await asr.transcribe(audio, language)
    return transcript.text.strip(), transcript.language or language


async def _synthesize(robot: Robot, text: str) -> bytes:
    tts = robot.tts
    # render() bounds each chunk by the TTS's timeout itself (ProviderTimeout, a ProviderError).
    async with provider_errors(f"TTS ({tts.name})", None):
        return await render(tts, text)


class SttResult(BaseModel):
    text: str
    language: str | None
    ms: float
    """ASR time."""


@router.post("/stt", dependencies=[Limited], openapi_extra=UPLOAD_BODY)
async def stt(
    request: Request,
    context: Context,
    robot: Annotated[str | None, Query(description="Robot name (default: the first)")] = None,
    language: Annotated[str | None, Query(description="Default: the robot's ASR language")] = None,
) -> SttResult:
    """An audio file (WAV; FLAC, OGG with soundfile) -> its text, by the robot's ASR."""
    pick_robot(context, robot)  # an unknown robot: 404 before the upload is read
    audio, fields = await _uploaded_audio(request, context)
    bot = await started_robot(context, robot or fields.get("robot"), "asr")
    asked = time.perf_counter()
    text, found = await _transcribe(bot, audio, language or fields.get("language"))
    return SttResult(text=text, language=found, ms=_ms(asked))


class TtsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=1000)
    robot: str | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("the text is blank")
        return text.strip()


async def tts_request(request: Request) -> TtsRequest:
    """The JSON body, read with a limit (FastAPI's own body parameter would read any size)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_TTS_BODY_BYTES:
            raise HTTPException(413, f"the request body is over {MAX_TTS_BODY_BYTES} bytes")
    try:
        return TtsRequest.model_validate_json(bytes(raw))
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


TTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TtsRequest.model_json_schema()}},
    }
}


@router.post(
    "/tts",
    dependencies=[Limited],
    openapi_extra=TTS_BODY,
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}, "description": "8 kHz mono 16-bit WAV"}},
)
async def tts(body: Annotated[TtsRequest, Depends(tts_request)], context: Context) -> Response:
    """Text -> the robot's voice as a WAV (8 kHz mono, 16-bit: what a caller hears)."""
    bot = await started_robot(context, body.robot, "tts")
    started = time.perf_counter()
    audio = await _synthesize(bot, body.text)
    headers = {"X-Synthesis-Ms": str(_ms(started))}
    return Response(wav_bytes(audio), media_type="audio/wav", headers=headers)


class VoiceResult(BaseModel):
    text: str
    """What the ASR heard."""
    answer: str
    """What the robot says (its end-call and transfer markers removed)."""
    audio_wav_base64: str
    """The answer in the robot's voice: 8 kHz mono 16-bit WAV, base64."""
    ends_call: bool = False
    transfer: bool = False
    ms: dict[str, float | None]
    """asr, answer (the whole text), first_clause (the first words a TTS could start on), tts, total."""


@router.post("/voice/process", dependencies=[Limited], openapi_extra=UPLOAD_BODY)
async def voice_process(
    request: Request,
    context: Context,
    robot: Annotated[str | None, Query(description="Robot name (default: the first)")] = None,
) -> VoiceResult:
    """One voice turn: audio -> the robot's ASR -> its answer (dry-run tools) -> its TTS."""
    started = time.perf_counter()
    pick_robot(context, robot)
    audio, fields = await _uploaded_audio(request, context)
    chosen = pick_robot(context, robot or fields.get("robot"))
    if chosen.config.mode != "pipeline":
        raise HTTPException(
            409,
            f"robot {chosen.name!r} is in {chosen.config.mode} mode; "
            "/api/v1/voice/process answers for pipeline robots",
        )
    bot = await started_robot(context, robot or fields.get("robot"), "asr", "llm", "tts")
    asked = time.perf_counter()
    text, _ = await _transcribe(bot, audio, fields.get("language"))
    asr_ms = _ms(asked)
    if not text:
        raise HTTPException(422, "the ASR recognised no speech in the audio")
    asked = time.perf_counter()
    reply = await _answer(bot, text)
    answer_ms = _ms(asked)
    asked = time.perf_counter()
    speech = await _synthesize(bot, reply.text) if reply.text else b""
    return VoiceResult(
        text=text,
        answer=reply.text,
        audio_wav_base64=base64.b64encode(wav_bytes(speech)).decode("ascii"),
        ends_call=reply.ends_call,
        transfer=reply.transfer,
        ms={
            "asr": asr_ms,
            "answer": answer_ms,
            "first_clause": None
            if reply.first_clause_ms is None
            else round(reply.first_clause_ms, 1),
            "tts": _ms(asked),
            "total": _ms(started),
        },
    )


async def _answer(robot: Robot, text: str) -> TextReply:
    """The robot's reply to `text` in a new dialog (after its greeting), webhooks dry-run."""
    from voiceplat.dialog.text_dialog import DryRunTools, TextDialog

    dialog = TextDialog(robot)
    dry_run = DryRunTools(robot.config.tools, robot.env) if robot.tools is not None else None
    dialog.answerer.tools = dry_run
    llm = robot.llm
    timeout_s = None if llm.bounds_own_time else max(ANSWER_TIMEOUT_S, 3 * llm.settings.timeout_s)
    try:
        async with provider_errors(f"LLM ({llm.name})", timeout_s):
            return await dialog.say(text)
    finally:
        if dry_run is not None:
            await dry_run.aclose()
