"""The JSON-file sink: one readable file per call, the always-on embedded default.

`<logs_dir>/YYYYMMDD_HHMMSS_<source>_<call_id>.json` (call start, UTC) holds
`{"call": {...}, "turns": [...], "pipeline_log": [...]}`. It is written when the call opens (status
in_progress, so a crash still leaves a trace) and rewritten when it finishes, and again when the
finished record is amended (the summary made after the call: only the changed fields of "call"
are replaced). Each write goes to a temporary file in the same folder and is renamed over the old
one, so a reader never sees half a file. File I/O runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from pathlib import Path

from pydantic_core import PydanticSerializationError

from voiceplat.storage.clean import Cleaner
from voiceplat.storage.recorder import Sink
from voiceplat.storage.records import CallAmended, CallRecord, CallSnapshot

log = logging.getLogger(__name__)

CALL_ID_MAX = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_call_id(call_id: str) -> str:
    """The call id as a file-name part: it comes from the network, so only [A-Za-z0-9_-] stay."""
    return _UNSAFE.sub("", call_id)[:CALL_ID_MAX] or "unknown"


def file_name(call: CallRecord) -> str:
    started = call.started_at.strftime("%Y%m%d_%H%M%S")
    return f"{started}_{call.source}_{safe_call_id(call.call_id)}.json"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; call logs are ordinary files, like those open() creates.
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def cleaned_json(snapshot: CallSnapshot, error: Exception) -> str:
    """The snapshot with what JSON cannot hold fixed (a lone surrogate in the caller's metadata,
    absurd nesting), as the store sinks store it; the fixes are logged."""
    cleaner = Cleaner()
    value = cleaner.value(snapshot.model_dump(mode="python"))
    log.warning(
        "jsonfile: call %s: %s; written with changes: %s",
        snapshot.call.call_id,
        error,
        "; ".join(cleaner.fixes[:20]),
    )
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


class JsonFileSink(Sink):
    name = "jsonfile"

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = Path(logs_dir)

    def path_for(self, call: CallRecord) -> Path:
        return self.logs_dir / file_name(call)

    async def write(self, snapshot: CallSnapshot) -> None:
        # pydantic writes non-ASCII text as is (readable Cyrillic) and NaN/inf as null.
        try:
            text = snapshot.model_dump_json(indent=2) + "\n"
        except PydanticSerializationError as exc:
            text = cleaned_json(snapshot, exc)
        await asyncio.to_thread(write_atomically, self.path_for(snapshot.call), text)

    async def amend(self, item: CallAmended) -> None:
        await asyncio.to_thread(self._amend, item)

    def _amend(self, item: CallAmended) -> None:
        path = self.path_for(item.call)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            # The finished write was lost (dropped, or failed): the amended record is all there is.
            log.warning(
                "jsonfile: call %s has no file; writing its amended record", item.call.call_id
            )
            record = CallSnapshot(call=item.call).model_dump(mode="json")
        else:
            # Only the changed fields: what the file holds of the call is otherwise final.
            changes = item.call.model_dump(mode="json", include=set(item.changes))
            record["call"].update(changes)
        # What JSON cannot hold (a lone surrogate in the summary) is fixed as the stores fix it.
        cleaner = Cleaner()
        record = cleaner.value(record)
        if cleaner.fixes:
            log.warning(
                "jsonfile: call %s: amended with changes: %s",
                item.call.call_id,
                "; ".join(cleaner.fixes[:20]),
            )
        write_atomically(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
