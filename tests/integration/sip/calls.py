"""What the SIPp tests share: robot settings that end a call on cue, the caller's media, and
reading a call record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.integration.sip.rtp import Packet, Segment, packets, write_pcap

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HELLO_WAV = FIXTURES / "ru_hello.wav"
CALLER = "79990001122"
"""The caller's number in the scenarios' From."""

GOODBYE = {"asr": {"texts": ["до свидания"]}, "llm": {"end_call_on": ["до свидания"]}}
"""The caller's first utterance is heard as "до свидания" and the robot answers it with goodbye
and hangs up (BYE): a SIPp caller waits for that BYE instead of guessing how long an answer takes."""

KEYS = {"dtmf": {"#": "hangup"}, "dtmf_inter_digit_ms": 1000}
"""'#' makes the robot hang up; other keys reach the LLM 1 s after the last one."""


def write_media(
    workdir: Path, plan: list[Segment], name: str = "media.pcap", after: list[Packet] | None = None
) -> list[Packet]:
    """Writes the pcap a scenario plays (by `name`, next to the scenario SIPp runs in `workdir`);
    returns its packets, which a later stream of the call continues (`after`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stream = packets(plan, after)
    write_pcap(workdir / name, stream)
    return stream


def the_one(records: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(records) == 1, [r["call"] for r in records]
    return records[0]


def events(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in record["pipeline_log"] if e["event"] == name]


def turns(record: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [t for t in record["turns"] if t["role"] == role]


def call_id(messages: str) -> str:
    """The Call-ID of the (first) call in a SIPp message log."""
    found = re.search(r"^Call-ID: *(\S+)", messages, re.MULTILINE | re.IGNORECASE)
    assert found, "no Call-ID in SIPp's messages"
    return found.group(1)


def record_of(records: list[dict[str, Any]], sip_call_id: str) -> dict[str, Any]:
    found = [r for r in records if r["call"]["metadata"].get("sip_call_id") == sip_call_id]
    assert len(found) == 1, (sip_call_id, [r["call"] for r in records])
    return found[0]
