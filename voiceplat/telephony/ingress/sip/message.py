"""What the robot reads off an incoming INVITE's text: header values and the users in its URIs.

PJSIP has already parsed and accepted the message; this only picks values out of
`SipRxData.wholeMsg`, and returns None for what is missing or unreadable, never raises.
"""

from __future__ import annotations

import re

COMPACT_NAMES = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via"}

_URI_USER = re.compile(r"sips?:(?P<user>[^@;>\s:]+)(?::[^@;>\s]*)?@|tel:(?P<tel>[^;>\s]+)", re.I)
_DISPLAY_NAME = re.compile(r'^\s*"(?P<quoted>(?:[^"\\]|\\.)*)"|^\s*(?P<token>[^<"]+?)\s*<')


def split_message(whole_msg: str) -> tuple[str, dict[str, list[str]]]:
    """The start line and the headers (lower-case names, compact forms expanded, folded lines
    joined); the body is left out."""
    head = re.split(r"\r?\n\r?\n", whole_msg, maxsplit=1)[0]
    lines: list[str] = []
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    start = lines[0] if lines else ""
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        headers.setdefault(COMPACT_NAMES.get(key, key), []).append(value.strip())
    return start, headers


def header(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name.lower())
    return values[0] if values else None


def request_uri(start_line: str) -> str | None:
    parts = start_line.split()
    return parts[1] if len(parts) == 3 and parts[2].upper().startswith("SIP/") else None


def uri_user(value: str | None) -> str | None:
    """The user part of the first sip:/sips: URI (None when it has none) or the number of a tel:
    URI, in a header value or URI."""
    if not value:
        return None
    match = _URI_USER.search(value)
    if not match:
        return None
    return match.group("user") or match.group("tel")


def display_name(value: str | None) -> str | None:
    if not value:
        return None
    match = _DISPLAY_NAME.match(value)
    if not match:
        return None
    name = match.group("quoted") if match.group("quoted") is not None else match.group("token")
    return name.strip() or None


def source_host(address: str) -> str:
    """`SipRxData.srcAddress` ("1.2.3.4:5060" or "[::1]:5060") without the port."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else address
