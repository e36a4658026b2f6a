"""Festival's client protocol: replies, key-stuffed payloads, commands, waveforms."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from voiceplat.providers.tts.festival_protocol import (
    KEY,
    FestivalProtocolError,
    Reply,
    ReplyParser,
    parse_wave,
    scheme_string,
    stuff,
    synth_command,
)


def feed_all(parser: ReplyParser, data: bytes, step: int) -> list[Reply]:
    replies: list[Reply] = []
    for start in range(0, len(data), step):
        replies += parser.feed(data[start : start + step])
    return replies


@pytest.mark.parametrize("step", [1, 2, 5, 11, 12, 13, 4096])
def test_replies_split_anywhere(step: int) -> None:
    stream = b"LP\n" + stuff(b"4242\n") + b"OK\n" + b"WV\n" + stuff(b"RIFF....") + b"OK\nER\n"
    replies = feed_all(ReplyParser(), stream, step)
    assert replies == [
        Reply("LP", b"4242\n"),
        Reply("OK"),
        Reply("WV", b"RIFF...."),
        Reply("OK"),
        Reply("ER"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        KEY,
        KEY + KEY,
        b"abc" + KEY + b"def",
        KEY[:-1] + b"X",  # stuffed-looking, but no y follows
        KEY[:-1] + b"XX" + KEY,
        KEY[:-1],
        b"fff",  # Festival's own naive receiver would miss the end key after an "f"
        b"",
        bytes(range(256)) * 3,
    ],
)
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_stuffed_payloads_round_trip(payload: bytes, step: int) -> None:
    stream = b"WV\n" + stuff(payload) + b"OK\n"
    assert feed_all(ReplyParser(), stream, step) == [Reply("WV", payload), Reply("OK")]


def test_random_audio_round_trips() -> None:
    rng = np.random.default_rng(7)
    payload = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    payload = payload[:5000] + KEY + payload[5000:]
    stream = b"WV\n" + stuff(payload) + b"OK\n"
    assert feed_all(ReplyParser(), stream, 4096) == [Reply("WV", payload), Reply("OK")]


def test_unknown_tag_is_a_protocol_error() -> None:
    with pytest.raises(FestivalProtocolError):
        ReplyParser().feed(b"HI\n")


def test_final_replies() -> None:
    assert Reply("OK").final and Reply("ER").final
    assert not Reply("WV", b"x").final


def test_commands_quote_text() -> None:
    assert scheme_string('a "b" \\c') == '"a \\"b\\" \\\\c"'
    command = synth_command("Привет.")
    assert command == '(utt.send.wave.client (utt.synth (Utterance Text "Привет.")))\n'.encode()


def riff(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def test_parse_wave() -> None:
    samples = np.arange(-50, 50, dtype=np.int16)
    pcm = parse_wave(riff(samples, 16000))
    assert pcm.rate == 16000
    assert np.array_equal(pcm.to_numpy(), samples)


def test_parse_wave_rejects_garbage_and_stereo() -> None:
    with pytest.raises(FestivalProtocolError):
        parse_wave(b"not a wave")
    with pytest.raises(FestivalProtocolError):
        parse_wave(riff(np.zeros(20, dtype=np.int16), 16000, channels=2))
