"""A store sink's spool: an append-only file of JSON lines with a persisted read offset.

`<spool_dir>/<sink>.jsonl` holds one clean JSON line per record item (`clean.encode_item`), in the
order the sink was handed them; `<sink>.offset` holds the byte offset up to which the lines are
written to the store (acknowledged), as 20 ASCII digits. So a crash at any byte of any write loses
no line that was acknowledged to the sink and replays none that was acknowledged by the store:

- `append` is one write(2) and no fsync: the line is in the OS's page cache when it returns, so it
  survives a crash of the robot (not of the machine); `close` fsyncs both files;
- `read` returns the pending lines in order, in batches, and `ack` moves the offset past them; once
  nothing is pending both files are truncated, so the spool only grows while a store is behind;
- the offset is written whole or not at all: to `<sink>.offset.tmp`, then renamed over the old one
  (a torn 20-digit offset could point anywhere, past lines never written or into a line);
- the writer acknowledges a batch only once the store has it: a robot that dies in between replays
  that batch at the next start (stores upsert, so that is harmless), and never skips a line;
- `open` drops a torn last line (a robot killed in the middle of a write);
- `reject` keeps a line a store refused for its content in `<sink>.rejected.jsonl`, with the reason.

The writer that drains a spool into its store is `spooled_sink.SpooledSink`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from voiceplat.storage.records import utcnow

log = logging.getLogger(__name__)

Entry = dict[str, Any]
"""A spooled item as `clean.item_dict` made it: {"k": kind, "call": {...}, ...}."""

_OFFSET_WIDTH = 20


class Spool:
    """An append-only file of JSON lines with a persisted read offset. Used from one event loop."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset_path = self.path.with_suffix(".offset")
        self.rejected_path = self.path.with_suffix(".rejected.jsonl")
        self._offset_tmp_path = self.path.with_suffix(".offset.tmp")
        self.offset = 0
        self.pending = 0
        self._size = 0
        self._fd: int | None = None

    def open(self) -> int:
        """Opens (or creates) the spool; returns the items left by a previous run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._repair_torn_tail()
        self.offset = self._read_offset()
        if self.offset > self._size:
            # An empty file with an old offset: a crash between the two truncations (the file
            # goes first), every line was written. Anything else is a damaged spool.
            if self._size:
                log.warning(
                    "spool %s: offset %d beyond the file; replaying all", self.path, self.offset
                )
            self.offset = 0
        self.pending = self._count_lines(self.offset)
        if not self.pending:
            self._truncate()
        return self.pending

    def append(self, line: bytes) -> None:
        """Appends one line (it must end with a newline): one write(2), no fsync."""
        assert self._fd is not None, "spool not open"
        written = os.write(self._fd, line)
        if written != len(line):  # a full disk: keep the file made of whole lines
            os.ftruncate(self._fd, self._size)
            raise OSError(f"spool {self.path}: short write ({written} of {len(line)} bytes)")
        self._size += written
        self.pending += 1

    def read(self, max_items: int, max_bytes: int) -> list[tuple[bytes, int]]:
        """Pending lines in order, up to `max_items` and about `max_bytes` (at least one line,
        however long): (line, offset after it)."""
        assert self._fd is not None, "spool not open"
        lines: list[tuple[bytes, int]] = []
        position = self.offset
        while (
            len(lines) < max_items and position < self._size and position - self.offset < max_bytes
        ):
            chunk = os.pread(self._fd, min(max_bytes, self._size - position), position)
            if b"\n" not in chunk:  # one line longer than max_bytes: read it whole
                chunk = os.pread(self._fd, self._find_newline(position) - position, position)
            start = 0
            while len(lines) < max_items:
                end = chunk.find(b"\n", start)
                if end < 0:
                    break
                lines.append((chunk[start : end + 1], position + end + 1))
                start = end + 1
            position += start
        return lines

    def ack(self, offset: int, count: int) -> None:
        """`count` lines up to `offset` are written; when nothing is left, the file is emptied."""
        assert self._fd is not None, "spool not open"
        if self.pending - count <= 0:
            self.pending = 0
            self._truncate()
        else:
            self._write_offset(offset)
            self.offset = offset
            self.pending -= count

    def reject(self, line: bytes, reason: str) -> None:
        """Keeps a line a store refused, with the reason, in `<sink>.rejected.jsonl`."""
        try:
            item: Any = json.loads(line)
        except ValueError:
            item = line.decode("utf-8", "replace")
        record = {"at": utcnow().isoformat(), "reason": reason, "item": item}
        with self.rejected_path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            try:
                offset_fd = os.open(self.offset_path, os.O_RDONLY)
            except FileNotFoundError:
                return
            try:
                os.fsync(offset_fd)
            finally:
                os.close(offset_fd)

    def _read_offset(self) -> int:
        try:
            raw = self.offset_path.read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) != _OFFSET_WIDTH or not raw.isdigit():  # bytes.isdigit: ASCII only
            if raw:
                log.warning("spool %s: unreadable offset %r; replaying all", self.path, raw[:40])
            return 0
        return int(raw)

    def _write_offset(self, offset: int) -> None:
        """Whole or not at all: a crash in the middle leaves the old offset (that batch is
        replayed, and stores upsert), never a torn one."""
        data = str(offset).zfill(_OFFSET_WIDTH).encode()
        fd = os.open(self._offset_tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):  # a full disk: keep the old offset
            raise OSError(f"spool {self.offset_path}: short write ({written} of {len(data)})")
        os.replace(self._offset_tmp_path, self.offset_path)

    def _truncate(self) -> None:
        assert self._fd is not None
        # The file goes first: if the robot dies between the two, the next start finds an
        # empty file and an offset past it, and replays nothing (see `open`). Offset first
        # would replay every line of the file, all of them already in the store.
        os.ftruncate(self._fd, 0)
        self._size = 0
        self.offset = 0
        self._write_offset(0)

    def _repair_torn_tail(self) -> None:
        """A robot killed in the middle of a write may leave half a line: drop it."""
        if not self._size:
            return
        assert self._fd is not None
        if os.pread(self._fd, 1, self._size - 1) == b"\n":
            return
        keep = self._last_newline_before(self._size)
        log.warning("spool %s: dropping a torn last line (%d bytes)", self.path, self._size - keep)
        os.ftruncate(self._fd, keep)
        self._size = keep

    def _last_newline_before(self, end: int) -> int:
        assert self._fd is not None
        while end > 0:
            start = max(0, end - (1 << 16))
            chunk = os.pread(self._fd, end - start, start)
            found = chunk.rfind(b"\n")
            if found >= 0:
                return start + found + 1
            end = start
        return 0

    def _find_newline(self, position: int) -> int:
        assert self._fd is not None
        while position < self._size:
            chunk = os.pread(self._fd, 1 << 20, position)
            found = chunk.find(b"\n")
            if found >= 0:
                return position + found + 1
            position += len(chunk)
        return self._size

    def _count_lines(self, position: int) -> int:
        assert self._fd is not None
        count = 0
        while position < self._size:
            chunk = os.pread(self._fd, 1 << 20, position)
            count += chunk.count(b"\n")
            position += len(chunk)
        return count
