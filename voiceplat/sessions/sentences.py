"""A robot turn's sentences, one by one: fillers before late ones, the end and transfer markers.

The end-of-call marker counts only after the caller said goodbye; the transfer marker hands the
caller over after the sentence it ends (what the LLM wrote after it is not said).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from voiceplat.config import RobotConfig
from voiceplat.sessions.fillers import Fillers
from voiceplat.sessions.text import aiter_list, strip_marker
from voiceplat.sessions.transcript import CallTranscript
from voiceplat.sessions.transfer import take_marker
from voiceplat.sessions.turn import RobotTurn
from voiceplat.sessions.turn_audio import TurnAudio
from voiceplat.storage.recorder import CallLog


class SentenceHost(Protocol):
    config: RobotConfig
    call: CallLog
    transcript: CallTranscript
    audio: TurnAudio
    fillers: Fillers


async def speak_sentences(
    host: SentenceHost, turn: RobotTurn, sentences: AsyncIterator[str] | Iterable[str]
) -> None:
    if not isinstance(sentences, AsyncIterator):
        sentences = aiter_list(list(sentences))
    while True:
        try:
            raw = await host.fillers.next_sentence(turn, sentences)
        except StopAsyncIteration:
            break
        text, marker = strip_marker(raw, host.config.end_call_marker)
        if marker and not host.transcript.caller_said_goodbye():
            # Small models write the marker where it does not belong; hanging up on a caller
            # who did not say goodbye is worse than staying on the line.
            host.call.event("end_marker_ignored", turn=turn.idx)
            marker = False
        turn.ends_call = turn.ends_call or marker
        text, turn.transfer_to = take_marker(text, host.config.transfer, host.call, turn.idx)
        if text:
            host.fillers.before_synthesis(turn, text)
            await host.audio.synthesize(turn, text)
        if turn.transfer_to is not None:
            break  # the caller is handed over after this sentence; the rest is not said
