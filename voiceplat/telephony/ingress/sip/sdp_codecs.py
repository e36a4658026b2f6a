"""Our codec order decides the call's codec, not the caller's.

PJSIP answers an offer with the first codec *of the offer* that it supports (PJSIP's default,
PJMEDIA_SDP_NEG_PREFER_REMOTE_CODEC_ORDER). To make `sip.codecs` a real priority, the local SDP
the answer is negotiated from (`Call.onCallSdpCreated`) keeps only the first codec of our list that
the offer has (and telephone-event, for DTMF). Sans-I/O: SDP text in, SDP text out.
"""

from __future__ import annotations

import re

STATIC_PAYLOADS = {"0": "PCMU", "8": "PCMA", "9": "G722"}
KEEP_ALWAYS = {"TELEPHONE-EVENT"}

_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+([^/\s]+)", re.IGNORECASE)


def _lines(sdp: str) -> list[str]:
    return [line for line in re.split(r"\r?\n", sdp) if line]


def audio_codecs(sdp: str) -> list[tuple[str, str]]:
    """(payload type, upper-case codec name) of the first audio m= line, in its order."""
    lines = _lines(sdp)
    names: dict[str, str] = {}
    formats: list[str] = []
    in_audio = False
    for line in lines:
        if line.startswith("m="):
            if formats:
                break
            parts = line.split()
            in_audio = parts[0] == "m=audio"
            if in_audio:
                formats = parts[3:]
        elif in_audio and (match := _RTPMAP.match(line)):
            names[match.group(1)] = match.group(2).upper()
    return [(pt, names.get(pt) or STATIC_PAYLOADS.get(pt, "")) for pt in formats]


def choose(offer: str, order: list[str]) -> str | None:
    """The first codec of `order` the offer has; None if none."""
    offered = {name for _, name in audio_codecs(offer)}
    return next((name for name in order if name.upper() in offered), None)


def restrict(local_sdp: str, codec: str) -> str:
    """`local_sdp` with its audio formats cut to `codec` (and telephone-event)."""
    keep_names = {codec.upper(), *KEEP_ALWAYS}
    keep = {pt for pt, name in audio_codecs(local_sdp) if name in keep_names}
    if not any(name == codec.upper() for _, name in audio_codecs(local_sdp)):
        return local_sdp  # we do not have it: leave PJSIP's SDP as it is
    out: list[str] = []
    in_audio = False
    for line in _lines(local_sdp):
        if line.startswith("m="):
            parts = line.split()
            in_audio = parts[0] == "m=audio"
            if in_audio:
                line = " ".join(parts[:3] + [pt for pt in parts[3:] if pt in keep])
        elif in_audio and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            fields = line.split(":", 1)[1].split(None, 1)
            if not fields or fields[0] not in keep:  # ("a=rtpmap:" alone names no format)
                continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"
