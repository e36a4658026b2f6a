"""The Twilio Media Streams ingress: one stream's WebSocket as a `CallChannel`.

Messages are decoded by `codec.py`. Outbound, robot audio goes as `media` messages (mu-law, base64)
paced at real time with a small lead by the shared `Pacer`, as to FreeSWITCH: Twilio plays what it
buffers, so pacing bounds what a barge-in must drop. A turn's end is a `mark`, which Twilio answers
when the audio before it has played: with the playout clock (`PlayoutModel`) that gives what the
caller heard, by the same rules as mod_audio_fork's marks (`marks.PeerMarks`: the clock first, the
answer at most `MARK_SLACK_S` later, the clock alone for a peer that never answers). Twilio has no
pre-buffer and no marker samples, so none of mod_audio_fork's padding applies. Barge-in sends
`clear`: every mark sent is "cleared" then (Twilio answers them too; those echoes change nothing).
The pacing, the playout clock and the marks' bookkeeping are `paced.MarkedChannel`'s.

Auth (`auth.py`): the signature or a Bearer token is checked in the handshake (401, no call);
only the start message's `customParameters.token` arrives after it: a wrong one ends the stream as
`protocol_error` with close code 1008 and the reason. Media Streams has no transfer
(that takes Twilio's REST API), and the robot hanging up closes the socket: Twilio then goes on
with the TwiML after <Connect> (none: the call ends).
"""

from __future__ import annotations

from typing import Unpack

from voiceplat.audio.pcm import duration_ms
from voiceplat.telephony.channel import Hangup
from voiceplat.telephony.events import CallMetadata, CallProtocolError, TransferResult
from voiceplat.telephony.ingress.paced import MarkedChannel, Pacing, Transport
from voiceplat.telephony.ingress.twilio import codec
from voiceplat.telephony.ingress.twilio.auth import Verdict, start_token_valid


class TwilioChannel(MarkedChannel):
    source = "twilio"
    """The call record's source when the call fails before its metadata."""

    def __init__(
        self,
        transport: Transport,
        *,
        verdict: Verdict | None = None,
        **pacing: Unpack[Pacing],
    ) -> None:
        super().__init__(transport, **pacing)
        self._decoder = codec.TwilioDecoder()
        self._verdict = verdict or Verdict()
        self._stream_sid = ""
        transport.attach(self)
        if self._verdict.refused is not None:
            self._fail(CallProtocolError(f"not authorised: {self._verdict.refused}"))

    # -- inbound: called by the transport's reader -----------------------------------------
    def _decode(self, message: str | bytes) -> list[codec.Event]:
        decoder = self._decoder
        return decoder.text(message) if isinstance(message, str) else decoder.binary(message)

    def _on_event(self, event: codec.Event) -> None:
        if isinstance(event, CallMetadata):
            self._started(event)
        elif isinstance(event, Hangup):
            self._fail(event)  # stop: the caller hung up (or the stream was stopped)
        else:
            super()._on_event(event)

    def _started(self, metadata: CallMetadata) -> None:
        expected = self._verdict.token_in_start
        if expected is not None and not start_token_valid(
            expected, self._decoder.custom_parameters
        ):
            why = [self._verdict.failed, "customParameters.token missing or wrong"]
            raise CallProtocolError("not authorised: " + "; ".join(filter(None, why)))
        self._metadata = metadata
        self._stream_sid = str(metadata.extra["stream_sid"])
        self._metadata_ready.set()

    # -- outbound --------------------------------------------------------------------------
    async def clear(self) -> float:
        """Barge-in: drops queued audio and tells Twilio to drop what it buffers."""
        heard = self._drop_queued(self._clock())
        if self._stream_sid:
            self._send(codec.clear(self._stream_sid))
        return heard

    async def transfer(self, target: str) -> TransferResult:
        return TransferResult(
            accepted=False, reason="Media Streams cannot transfer (use Twilio's REST API)"
        )

    def _mark_message(self, name: str) -> str:
        return codec.mark(self._stream_sid, name)

    def _send_audio(self, chunk: bytes, now: float) -> None:
        self.playout.on_send(duration_ms(len(chunk)), now)
        self._send(codec.media(self._stream_sid, chunk))
