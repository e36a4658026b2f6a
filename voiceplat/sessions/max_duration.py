"""The call's time limit in the modes whose robot turns are the session's speaker (pipeline,
llm_script; realtime has its own): at `max_call_s` the robot says `max_call_text` and hangs up."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voiceplat.sessions.base import Session


async def max_duration_goodbye(session: Session) -> None:
    """At max_call_s the robot says max_call_text and hangs up. The goodbye is final: caller
    speech neither cancels nor replaces it, its TTS gets no fallback phrase (a failed or hung
    TTS ends the call after tts.timeout_s) and the wait for it to be heard is bounded by the
    playout clock. So the call ends within max_call_s + the TTS's time to first audio + the
    goodbye's length + FINAL_HEARD_SLACK_S."""
    await asyncio.sleep(session.config.max_call_s)
    session.call.event("max_duration")
    if session.saying_goodbye():
        return  # e.g. the no-input goodbye: it ends the call just as soon
    speaker = session.speaker
    if speaker is not None and not speaker.done():
        if session.robot_talking():
            await session.barge_in(force=True)
        else:
            speaker.cancel()
    session.start_speaker(
        lambda: session.speak(
            [session.config.max_call_text], interruptible=False, ends_call="max_duration"
        ),
        final=True,
    )
