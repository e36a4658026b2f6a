"""`fake` ASR: scripted transcripts, a test double that makes calls deterministic.

Each `transcribe` call takes the next entry of `texts`. One provider instance serves every call of a
robot in a process, so the position is shared by all calls (run one call at a time when the order
matters). Entries starting with `@` are directives:

- `@dur`: describe the audio instead, e.g. `<speech 1.23 s>`;
- `@empty`: an empty transcript (nothing recognised);
- `@raise`: raise `ProviderError` for this utterance;
- `@hang`: never answer (until cancelled), to exercise timeouts.

When the list is exhausted (or empty) the audio is described, unless `cycle` starts it over.

An entry may end with recognition details, `|name=number` each, as a real ASR reports its
confidence: `"Блан.|avg_logprob=-1.4|no_speech_prob=0.7"` gives the text "Блан." with
`details["avg_logprob"] == -1.4` and `details["no_speech_prob"] == 0.7` (faster_whisper's names,
which voiceplat.turns.utterance_filter reads). Directives take them too: `"@empty|no_speech_prob=0.9"`.
An entry without such a suffix is returned as written, `|` included.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import ASR, ASRSettings, ProviderError, Transcript, register

Failure = Literal["none", "raise", "hang"]
_DETAIL = re.compile(r"^([A-Za-z_]\w*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")


class FakeASRSettings(ASRSettings):
    """Settings of the `fake` ASR."""

    texts: list[str] = Field(
        default_factory=list,
        description="Transcripts returned in order, one per utterance; '@dur', '@empty', "
        "'@raise', '@hang' are directives; a '|avg_logprob=-1.4|no_speech_prob=0.7' suffix "
        "sets recognition details.",
    )
    cycle: bool = Field(False, description="Start `texts` over when exhausted.")
    delay_ms: float = Field(0.0, ge=0, description="Simulated recognition time per utterance.")
    fail: Failure = Field(
        "none", description="'raise': every call raises ProviderError; 'hang': never answers."
    )


def split_details(entry: str) -> tuple[str, dict[str, float]]:
    """`"text|name=1.5|other=-2"` -> ("text", {"name": 1.5, "other": -2.0}); only trailing
    `|name=number` parts are details, anything else stays in the text."""
    parts = entry.split("|")
    found: list[re.Match[str]] = []
    while len(parts) > 1 and (match := _DETAIL.match(parts[-1].strip())):
        found.insert(0, match)
        parts.pop()
    return "|".join(parts), {match[1]: float(match[2]) for match in found}


def describe(audio: Pcm) -> str:
    return f"<speech {audio.duration_s:.2f} s>"


async def hang_forever() -> None:
    """Waits until cancelled: a provider that stopped answering."""
    await asyncio.get_running_loop().create_future()


@register("asr", "fake")
class FakeASR(ASR):
    Settings = FakeASRSettings
    settings: FakeASRSettings

    def __init__(self, settings: FakeASRSettings, env: Mapping[str, str]) -> None:
        super().__init__(settings, env)
        self._position = 0

    def _next_entry(self) -> str:
        texts = self.settings.texts
        if self._position >= len(texts):
            if not (self.settings.cycle and texts):
                return "@dur"
            self._position = 0
        entry = texts[self._position]
        self._position += 1
        return entry

    async def transcribe(self, audio: Pcm, language: str | None) -> Transcript:
        # Take the entry before any await, so concurrent calls get distinct entries in call order.
        entry, details = split_details(self._next_entry())
        if self.settings.delay_ms:
            await asyncio.sleep(self.settings.delay_ms / 1000)
        if self.settings.fail == "hang" or entry == "@hang":
            await hang_forever()
        if self.settings.fail == "raise" or entry == "@raise":
            raise ProviderError("fake ASR failed on purpose")
        if entry == "@dur":
            text = describe(audio)
        elif entry == "@empty":
            text = ""
        else:
            text = entry
        return Transcript(
            text=text,
            language=language or self.settings.language,
            details={"duration_s": audio.duration_s, **details},
        )
