"""Handing the caller to a person: a blind transfer asked for by a key, the LLM or a track.

The robot says `transfer.text` (a turn caller speech does not cut; skipped when the robot's own
words already announced it: the LLM's sentence before its marker, a track), then asks the channel
to transfer (`CallChannel.transfer`: SIP REFER, mod_audio_fork's transfer command). Accepted: the
call ends with end_reason "transferred" and the record's `transfer_target`; the robot does not
hang up (the peer carries the call on). Refused: a `transfer_failed` event with the peer's status
and reason, `transfer.failed_text` is said, and the call goes on.

The LLM asks with `transfer.marker` ("[TRANSFER]") in its answer, as it ends a call with
`end_call_marker`: the marker is never spoken, the answer stops at it (what the LLM wrote after
it is not said), and the transfer goes to `transfer.target` once the words before it were heard.
"""

from __future__ import annotations

import re
from typing import Protocol

from voiceplat.config import RobotConfig, TransferSettings
from voiceplat.sessions.ending import CallEnded
from voiceplat.storage.recorder import CallLog
from voiceplat.telephony.channel import CallChannel

TRANSFERRED = "transferred"


class TransferHost(Protocol):
    """The session as a transfer uses it; `say` is the mode's way to say a phrase until heard."""

    config: RobotConfig
    call: CallLog
    channel: CallChannel

    async def say(self, text: str, *, protected: bool) -> None: ...


async def hand_over(host: TransferHost, target: str, *, by: str, announce: bool = True) -> None:
    """Transfers the call to `target`; raises CallEnded("transferred") when the peer took it,
    returns once `failed_text` was said when it refused. `by`: "dtmf", "llm" or "track"."""
    settings = host.config.transfer
    if announce:
        await host.say(settings.text, protected=True)
    host.call.event("transfer", target=target, by=by)
    result = await host.channel.transfer(target)
    if result.accepted:
        host.call.update(transfer_target=target)
        raise CallEnded(TRANSFERRED)
    host.call.event("transfer_failed", target=target, status=result.status, reason=result.reason)
    await host.say(settings.failed_text, protected=False)


def take_marker(
    text: str, settings: TransferSettings, call: CallLog, turn: int
) -> tuple[str, str | None]:
    """What of `text` to say, and the target the transfer marker in it asks for. With a marker:
    the words before it ("Соединяю, [TRANSFER]" says "Соединяю"); without a `transfer.target` to
    go to, all of the text but the marker, and that is recorded."""
    marker = re.compile(r"\s*" + re.escape(settings.marker), flags=re.IGNORECASE)
    found = marker.search(text)
    if found is None:
        return text, None
    if settings.target is None:
        call.event("transfer_marker_ignored", turn=turn, reason="transfer.target is not set")
        return marker.sub("", text).strip(), None
    return text[: found.start()].rstrip(" ,;:—–-"), settings.target
