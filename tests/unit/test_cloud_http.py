"""The shared cloud-provider helpers (providers/cloud_http) and the TTS file decoder, without I/O."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from voiceplat.providers import cloud_http
from voiceplat.providers.tts import audio_files


def test_mask_hides_every_secret_even_overlapping_ones():
    text = "key sk-abcdef-123 and token sk-abcdef-123-long, short ab"
    masked = cloud_http.mask(text, ["sk-abcdef-123", "sk-abcdef-123-long", None, "", "ab"])
    assert masked == "key *** and token ***, short ab"  # 2-letter 'secrets' are not masked


def test_backoff_doubles():
    assert cloud_http.backoff_delays(3, 0.5) == [0.5, 1.0, 2.0]
    assert cloud_http.backoff_delays(0, 0.5) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad key", "code": 401}}', "bad key"),
        (b'{"error_code": "UNAUTHORIZED", "error_message": "Unknown api key"}', "Unknown api key"),
        (b'{"detail": {"status": "invalid_api_key", "message": "Invalid"}}', "Invalid"),
        (b'{"detail": "Not found"}', "Not found"),
        (b'{"status": 401, "message": "Unauthorized"}', "Unauthorized"),
        (b'{"error": "quota"}', "quota"),
        (b"upstream down", "upstream down"),
    ],
)
def test_error_messages_of_the_cloud_apis(body: bytes, message: str):
    assert cloud_http.error_message(body) == message


def test_options_validation_and_problems():
    assert cloud_http.options_problems(cloud_http.HttpOptions(client_key="/k.pem"), {}) == [
        "client_key is set but client_cert is not; set both",
        "client_key: file /k.pem not found",
    ]
    with_password = cloud_http.HttpOptions(proxy="http://user:s3cret@proxy:3128")
    (problem,) = cloud_http.options_problems(with_password, {})
    assert "proxy contains a password" in problem and "proxy_env" in problem
    assert "s3cret" not in problem
    assert "s3cret" in cloud_http.option_secrets(with_password, {})
    with pytest.raises(ValueError, match="extra"):
        cloud_http.HttpOptions(proxy_url="http://proxy:3128")  # type: ignore[call-arg]
    options = cloud_http.HttpOptions(ca_bundle="/nowhere/ca.pem", proxy_env="MY_PROXY")
    assert cloud_http.options_problems(options, {}) == [
        "ca_bundle: file /nowhere/ca.pem not found",
        "MY_PROXY (the proxy URL) is not set in robots/<robot>/.env or the root .env",
    ]
    env = {"MY_PROXY": "http://user:pa55@proxy:3128"}
    assert cloud_http.proxy_url(options, env) == env["MY_PROXY"]
    assert cloud_http.option_secrets(options, env) == [env["MY_PROXY"], "pa55"]
    assert cloud_http.tls_verify(cloud_http.HttpOptions()) is True


def test_missing_env_wording():
    assert cloud_http.missing_env("A_KEY", alternative="A_TOKEN", what="the key") == (
        "A_KEY (or A_TOKEN) (the key) is not set: put A_KEY=... in "
        "robots/<robot>/.env or the root .env"
    )


def wav_bytes(tag: int, channels: int, rate: int, bits: int, data: bytes, extensible=False):
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack(
            "<HHIIHHHHIH", 0xFFFE, channels, rate, rate * channels * bits // 8,
            channels * bits // 8, bits, 22, bits, 0, tag,
        ) + guid_tail  # fmt: skip
    else:
        fmt = struct.pack(
            "<HHIIHH", tag, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits
        )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk, padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_wav_decoding_of_the_formats_services_send():
    samples = np.array([0, 16384, -16384, 32767], dtype="<i2")
    pcm16 = audio_files.decode(wav_bytes(1, 1, 22050, 16, samples.tobytes()))
    assert pcm16.rate == 22050 and pcm16.to_numpy().tolist() == samples.tolist()

    floats = (samples / 32768).astype("<f4").tobytes()
    extensible = audio_files.decode(wav_bytes(3, 1, 24000, 32, floats, extensible=True))
    assert extensible.rate == 24000 and extensible.to_numpy().tolist() == samples.tolist()

    stereo = np.array([[1000, 3000], [-2000, -4000]], dtype="<i2").tobytes()
    assert audio_files.decode(wav_bytes(1, 2, 8000, 16, stereo)).to_numpy().tolist() == [
        2000,
        -3000,
    ]
    pcm24 = b"".join((int(v) * 256).to_bytes(3, "little", signed=True) for v in samples)
    assert audio_files.decode(wav_bytes(1, 1, 8000, 24, pcm24)).to_numpy().tolist() == (
        samples.tolist()
    )
    with pytest.raises(audio_files.AudioFileError, match="0x0006"):
        audio_files.decode(wav_bytes(6, 1, 8000, 8, b"\x00\x01"))  # A-law
    with pytest.raises(audio_files.AudioFileError, match="not a WAV or MP3"):
        audio_files.decode(b"OggS\x00\x02")
