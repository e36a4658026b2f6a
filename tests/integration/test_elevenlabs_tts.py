"""The `elevenlabs` TTS against a local fake of its streaming endpoint, directly and via SOCKS5."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
from typing import Any

import numpy as np
import pytest

from tests.integration.fake_http import FakeServer, chunked, error, hang
from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import ProviderError
from voiceplat.providers.tts.elevenlabs import ElevenLabsTTS

KEY = "sk_elevenlabs_test_0123456789abcdef"
VOICE = "21m00Tcm4TlvDq8ikWAM"


def tone(seconds: float, rate: int) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm.from_numpy((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)


def make_tts(server: FakeServer, env: dict[str, str] | None = None, **settings: Any):
    options = {
        "provider": "elevenlabs",
        "voice": VOICE,
        "base_url": f"{server.url}/v1",
        "retry_backoff_s": 0,
    }
    env = {"ELEVENLABS_API_KEY": KEY} if env is None else env
    return ElevenLabsTTS(ElevenLabsTTS.Settings(**(options | settings)), env)


async def synthesize(tts: ElevenLabsTTS, text: str = "Добрый день!") -> list[Pcm]:
    return [pcm async for pcm in tts.synthesize(text)]


async def test_ulaw_8000_request_and_decoding():
    encoded = ulaw_encode(tone(0.3, 8000).data)
    pieces = [encoded[:333], encoded[333:1001], encoded[1001:]]
    async with FakeServer(chunked(pieces, "audio/basic")) as server:
        tts = make_tts(
            server,
            model_id="eleven_multilingual_v2",
            language_code="ru",
            voice_settings={"stability": 0.4, "similarity_boost": 0.8, "speed": 1.1},
        )
        chunks = await synthesize(tts)
        await tts.aclose()
    assert {chunk.rate for chunk in chunks} == {8000}
    assert b"".join(chunk.data for chunk in chunks) == ulaw_decode(encoded)
    assert len(chunks) == 3  # streamed as it arrived
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == f"/v1/text-to-speech/{VOICE}/stream"
    assert request.query == {"output_format": "ulaw_8000"}
    assert request.headers["xi-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.json() == {
        "text": "Добрый день!",
        "model_id": "eleven_multilingual_v2",
        "voice_settings": {"stability": 0.4, "similarity_boost": 0.8, "speed": 1.1},
        "language_code": "ru",
    }


async def test_pcm_16000_keeps_odd_bytes_and_can_be_resampled():
    audio = tone(0.25, 16000)
    pieces = [audio.data[:999], audio.data[999:2001], audio.data[2001:]]
    async with FakeServer(chunked(pieces, "audio/pcm")) as server:
        chunks = await synthesize(make_tts(server, output_format="pcm_16000"))
    assert b"".join(chunk.data for chunk in chunks) == audio.data
    assert {chunk.rate for chunk in chunks} == {16000}
    assert server.requests[0].json() == {"text": "Добрый день!", "model_id": "eleven_flash_v2_5"}

    async with FakeServer(chunked(pieces, "audio/pcm")) as server:
        tts = make_tts(server, output_format="pcm_16000", sample_rate=8000)
        chunks = await synthesize(tts)
    assert {chunk.rate for chunk in chunks} == {8000}
    assert abs(sum(chunk.samples for chunk in chunks) - 2000) <= 2


async def test_errors_retries_and_timeouts():
    answer = {"detail": {"status": "invalid_api_key", "message": f"Invalid API key: {KEY}"}}
    async with FakeServer(error(401, answer)) as server:
        with pytest.raises(ProviderError) as caught:
            await synthesize(make_tts(server))
    assert "HTTP 401: Invalid API key" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(server.requests) == 1

    ok = chunked([ulaw_encode(tone(0.1, 8000).data)])
    async with FakeServer(error(500, {"detail": "busy"}), ok) as server:
        assert sum(c.samples for c in await synthesize(make_tts(server))) == 800
    assert len(server.requests) == 2

    async with FakeServer(hang()) as server:
        with pytest.raises(ProviderError, match=r"no audio within 0\.2 s"):
            await synthesize(make_tts(server, timeout_s=0.2))


def test_settings_and_problems(monkeypatch: pytest.MonkeyPatch):
    settings = ElevenLabsTTS.Settings(provider="elevenlabs")
    assert settings.output_format == "ulaw_8000"
    assert ElevenLabsTTS(settings, {}).problems() == [
        "ELEVENLABS_API_KEY (ElevenLabs API key) is not set: put ELEVENLABS_API_KEY=... in "
        "robots/<robot>/.env or the root .env"
    ]
    with pytest.raises(ValueError, match="output_format"):
        ElevenLabsTTS.Settings(provider="elevenlabs", output_format="mp3_44100_128")
    in_config = ElevenLabsTTS.Settings(provider="elevenlabs", proxy="socks5://me:s3cret@h:1080")
    (problem,) = ElevenLabsTTS(in_config, {"ELEVENLABS_API_KEY": KEY}).problems()
    assert problem.startswith("proxy contains a password") and "s3cret" not in problem

    socks = ElevenLabsTTS.Settings(provider="elevenlabs", proxy="socks5://proxy:1080")
    original = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "socksio" else original(name, *a),
    )
    assert ElevenLabsTTS(socks, {"ELEVENLABS_API_KEY": KEY}).problems() == [
        "a SOCKS proxy needs the socksio package: pip install 'voiceplat[cloud]' "
        "(or pip install 'httpx[socks]')"
    ]
    from_env = ElevenLabsTTS.Settings(provider="elevenlabs", proxy_env="ELEVENLABS_PROXY")
    assert ElevenLabsTTS(from_env, {"ELEVENLABS_API_KEY": KEY}).problems() == [
        "ELEVENLABS_PROXY (the proxy URL) is not set in robots/<robot>/.env or the root .env"
    ]


# SOCKS5


class Socks5Proxy:
    """A minimal SOCKS5 proxy (RFC 1928, CONNECT; no auth or RFC 1929 user/password)."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.connects: list[tuple[str, int]] = []
        self.logins: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> Socks5Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            _, count = await reader.readexactly(2)
            methods = await reader.readexactly(count)
            if self.credentials:
                assert 2 in methods, "the client offered no username/password method"
                writer.write(b"\x05\x02")
                _, size = await reader.readexactly(2)
                user = (await reader.readexactly(size)).decode()
                size = (await reader.readexactly(1))[0]
                password = (await reader.readexactly(size)).decode()
                self.logins.append((user, password))
                ok = (user, password) == self.credentials
                writer.write(b"\x01\x00" if ok else b"\x01\x01")
                if not ok:
                    return
            else:
                writer.write(b"\x05\x00")
            _, command, _, kind = await reader.readexactly(4)
            assert command == 1, "only CONNECT is supported"
            if kind == 1:
                host = socket.inet_ntoa(await reader.readexactly(4))
            elif kind == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
            port = int.from_bytes(await reader.readexactly(2), "big")
            self.connects.append((host, port))
            up_reader, up_writer = await asyncio.open_connection(host, port)
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()


needs_socksio = pytest.mark.skipif(
    importlib.util.find_spec("socksio") is None, reason="needs the cloud extra (socksio)"
)


@needs_socksio
async def test_through_a_socks5_proxy():
    encoded = ulaw_encode(tone(0.1, 8000).data)
    async with FakeServer(chunked([encoded])) as server, Socks5Proxy() as proxy:
        tts = make_tts(server, proxy=f"socks5://127.0.0.1:{proxy.port}")
        assert tts.problems() == []
        chunks = await synthesize(tts)
        await tts.aclose()
    assert b"".join(chunk.data for chunk in chunks) == ulaw_decode(encoded)
    assert proxy.connects == [("127.0.0.1", server.port)]
    assert server.requests[0].headers["xi-api-key"] == KEY


@needs_socksio
async def test_proxy_credentials_come_from_the_env_and_stay_out_of_errors():
    async with FakeServer(chunked([b"\xff" * 80])) as server:
        async with Socks5Proxy(credentials=("robot", "pr0xy-pa55word")) as proxy:
            url = f"socks5://robot:pr0xy-pa55word@127.0.0.1:{proxy.port}"
            env = {"ELEVENLABS_API_KEY": KEY, "ELEVENLABS_PROXY": url}
            tts = make_tts(server, env, proxy_env="ELEVENLABS_PROXY")
            assert sum(c.samples for c in await synthesize(tts)) == 80
            await tts.aclose()
            assert proxy.logins == [("robot", "pr0xy-pa55word")]

            bad = dict(env, ELEVENLABS_PROXY=url.replace("pr0xy-pa55word", "wrong-password"))
            tts = make_tts(server, bad, proxy_env="ELEVENLABS_PROXY", retries=0)
            with pytest.raises(ProviderError) as caught:
                await synthesize(tts)
            await tts.aclose()
    assert "wrong-password" not in str(caught.value)
    assert KEY not in str(caught.value)

    env = {"ELEVENLABS_API_KEY": KEY, "ELEVENLABS_PROXY": "ftp://robot:pr0xy-pa55word@h:1"}
    tts = make_tts(server, env, proxy_env="ELEVENLABS_PROXY")
    with pytest.raises(ProviderError, match="Unknown scheme for proxy URL") as caught:
        await synthesize(tts)
    assert "pr0xy-pa55word" not in str(caught.value)
