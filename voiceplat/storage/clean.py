"""Record items as clean JSON lines, the form every store sink spools and writes.

Call data comes partly from the network (the dialplan's metadata JSON) and partly from models, so
it can hold what some store refuses: a NUL character (PostgreSQL `text` and `jsonb` reject
`\\x00`), a lone UTF-16 surrogate (not encodable as UTF-8), NaN, an integer beyond 64 bits (BSON),
metadata nested hundreds of levels deep (BSON allows 100) or a megabyte-long string. `clean`
makes such a value storable everywhere, the same way for every store (so the stores agree), and
says what it changed; the sink logs that as the reason.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from voiceplat.storage.records import (
    CallAmended,
    CallFinished,
    CallOpened,
    CallUpdated,
    EventLogged,
    RecordItem,
    TurnWritten,
)

MAX_DEPTH = 32
"""Deeper containers are stored as their JSON text, cut to MAX_STRING."""
MAX_STRING = 1_000_000
"""Characters kept of one string; a 100 KB transcript is kept whole."""
INT64 = 2**63
_SURROGATE = re.compile("[\ud800-\udfff]")
log = logging.getLogger(__name__)
KINDS = {
    CallOpened: "opened",
    CallUpdated: "updated",
    TurnWritten: "turn",
    EventLogged: "event",
    CallFinished: "finished",
    CallAmended: "amended",
}


class Cleaner:
    """Walks a JSON-like value, fixing what a store would refuse; `fixes` lists what it did."""

    def __init__(self) -> None:
        self.fixes: list[str] = []

    def value(self, value: Any, path: str = "", depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            if -INT64 <= value < INT64:
                return value
            self.fixes.append(f"{path}: integer beyond 64 bits stored as text")
            return str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.fixes.append(f"{path}: {value} stored as null")
            return None
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="python")
        if isinstance(value, dict | list | tuple | set | frozenset) and depth >= MAX_DEPTH:
            self.fixes.append(f"{path}: nested deeper than {MAX_DEPTH} levels, stored as text")
            return self.text(_as_text(value), path)
        if isinstance(value, dict):
            cleaned: dict[str, Any] = {}
            for key, item in value.items():
                name = self.text(str(key), f"{path}.<key {len(cleaned)}>")
                cleaned[name] = self.value(item, f"{path}.{name}" if path else name, depth + 1)
            return cleaned
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        return self.text(str(value), path)

    def text(self, value: str, path: str) -> str:
        if "\x00" in value:
            self.fixes.append(f"{path}: {value.count(chr(0))} NUL character(s) removed")
            value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fixes.append(f"{path}: invalid Unicode (lone surrogate) replaced by U+FFFD")
            value = _SURROGATE.sub("\ufffd", value)
        if len(value) > MAX_STRING:
            self.fixes.append(f"{path}: {len(value)} characters cut to {MAX_STRING}")
            value = value[:MAX_STRING]
        return value


def _as_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:MAX_STRING]
    except (ValueError, RecursionError):
        return "<too deeply nested to store>"


def item_dict(item: RecordItem) -> dict[str, Any]:
    """The item as a plain dict: `{"k": kind, "call": {...}, ...}` (not yet cleaned)."""
    entry: dict[str, Any] = {"k": KINDS[type(item)], "call": item.call.model_dump(mode="python")}
    if isinstance(item, TurnWritten):
        entry["turn"] = item.turn.model_dump(mode="python")
    elif isinstance(item, EventLogged):
        entry["event"] = item.event.model_dump(mode="python")
    elif isinstance(item, CallFinished):
        entry["turns"] = [turn.model_dump(mode="python") for turn in item.snapshot.turns]
        entry["pipeline_log"] = [
            event.model_dump(mode="python") for event in item.snapshot.pipeline_log
        ]
    elif isinstance(item, CallAmended):
        entry["changes"] = dict(item.changes)
    return entry


@dataclass(frozen=True, slots=True)
class EncodedItem:
    line: bytes
    fixes: list[str]


# The recorder hands the same item object to every sink; the encoding is shared between them
# (a finished call's snapshot can be large). The cache holds the items themselves, so an id()
# is never reused while its entry lives.
_CACHE_SIZE = 256
_cache: OrderedDict[int, tuple[RecordItem, EncodedItem]] = OrderedDict()


_reported: OrderedDict[str, frozenset[str]] = OrderedDict()


def encode_item(item: RecordItem) -> EncodedItem:
    """The item as one clean JSON line (ending in a newline) and the fixes made to it.

    Fixes are logged once per call (every item carries the call's metadata, and every store
    sink encodes it), and again only when they change.
    """
    hit = _cache.get(id(item))
    if hit is not None and hit[0] is item:
        return hit[1]
    cleaner = Cleaner()
    entry = cleaner.value(item_dict(item))
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    encoded = EncodedItem(line=line, fixes=cleaner.fixes)
    _cache[id(item)] = (item, encoded)
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    if encoded.fixes:
        _report(item.call.call_id, encoded.fixes)
    return encoded


def _report(call_id: str, fixes: list[str]) -> None:
    new = frozenset(fixes) - _reported.get(call_id, frozenset())
    if not new:
        return
    _reported[call_id] = _reported.get(call_id, frozenset()) | new
    _reported.move_to_end(call_id)
    if len(_reported) > _CACHE_SIZE:
        _reported.popitem(last=False)
    log.warning("call %s: stored with changes: %s", call_id, "; ".join(sorted(new)[:20]))


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
