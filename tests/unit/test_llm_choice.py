"""The constrained choice of the LLM contract (llm_script): matching, grammar, the fake, the prompt."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from voiceplat.audio.pcm import Pcm
from voiceplat.providers.base import LLM, LLMSettings, Message, ProviderError, match_option
from voiceplat.providers.llm.fake import FakeLLM
from voiceplat.providers.llm.llama_prompt import options_grammar
from voiceplat.sessions.llm_script.tracks import Track, TrackSet

OPTIONS = ["hours", "prices", "price_list", "fallback"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("prices", "prices"),
        ("  Prices.\n", "prices"),
        ('"hours"', "hours"),
        ("«fallback»", "fallback"),
        ("The track is prices, I think", "prices"),
        ("price_list", "price_list"),  # not 'prices' or a part of it
        ("play hours, then prices", "hours"),  # the first named
    ],
)
def test_match_option(answer: str, expected: str) -> None:
    assert match_option(answer, OPTIONS) == expected


@pytest.mark.parametrize("answer", ["", "pricesss", "часы работы", "my-hours"])
def test_match_option_names_none(answer: str) -> None:
    with pytest.raises(ProviderError, match="names none of the options: hours, prices"):
        match_option(answer, OPTIONS)


def test_options_grammar_escapes_ids() -> None:
    assert options_grammar(["hours", "цены"]) == 'root ::= "hours" | "цены"'
    assert options_grammar(['say "hi"', "a\\b", "tab\there"]) == (
        'root ::= "say \\"hi\\"" | "a\\\\b" | "tab\\x09here"'
    )


class Scripted(LLM):
    """An LLM whose free answer is fixed: the base `choose` must match it."""

    Settings = LLMSettings

    def __init__(self, answer: list[str]) -> None:
        super().__init__(LLMSettings(provider="scripted"), {})
        self.answer = answer

    async def stream(self, messages: list[Message]) -> AsyncIterator[str]:
        for piece in self.answer:
            yield piece


async def test_base_choose_streams_and_matches() -> None:
    assert await Scripted(["I would play ", "pri", "ces."]).choose([], OPTIONS) == "prices"
    with pytest.raises(ProviderError):
        await Scripted(["no idea"]).choose([], OPTIONS)


def fake(**settings: object) -> FakeLLM:
    return FakeLLM(FakeLLM.Settings(provider="fake", **settings), {})


def dialog(text: str) -> list[Message]:
    return [Message("system", "s"), Message("assistant", "greeting"), Message("user", text)]


async def test_fake_choose_maps_keywords_then_ids_in_the_text() -> None:
    llm = fake(choices={"стоит": "prices", "погода": "weather"})
    assert await llm.choose(dialog("Сколько СТОИТ приём?"), OPTIONS) == "prices"
    assert await llm.choose(dialog("say hours please"), OPTIONS) == "hours"
    with pytest.raises(ProviderError, match="'weather'"):
        await llm.choose(dialog("Какая погода?"), OPTIONS)
    with pytest.raises(ProviderError, match="failed on purpose"):
        await fake(fail="raise").choose(dialog("hours"), OPTIONS)


def test_system_prompt_lists_the_tracks() -> None:
    audio = Pcm(b"\0\0", 8000)
    hours = Track("hours", "opening hours", "Мы работаем с восьми.", audio)
    sorry = Track("sorry", "unclear words", None, audio)
    tracks = TrackSet({"hours": hours, "sorry": sorry}, sorry)
    prompt = tracks.system_prompt("Ты администратор.")
    assert prompt.startswith("Ты администратор.\n\nTracks (id: when to play it):\n")
    assert "- hours: opening hours\n- sorry: unclear words\n" in prompt
    assert prompt.endswith("Reply sorry only if none of the tracks fits.")
    assert sorry.spoken_text == "unclear words" and hours.spoken_text == "Мы работаем с восьми."
    assert tracks.ids == ["hours", "sorry"] and tracks.greeting is None
