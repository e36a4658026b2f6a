"""The store spool under a crash at any byte of any write: replay loses nothing acknowledged and
duplicates nothing.

A crash is simulated inside the spool's own system calls: the n-th write, rename or truncate of a
run does part of its work (a prefix of the bytes; a rename or truncate done or not) and the
process "dies" there (an exception no code catches, its file descriptors closed with no fsync,
which is what the kernel keeps of a killed process). A new Spool then opens the same files.

What must hold, for every crash point:
- every line whose `append` returned and that was not acknowledged comes back, in order, whole;
- no line whose `ack` returned comes back (the batch of an `ack` cut by the crash may: the store
  has it and upserts, which is the spool's at-least-once contract);
- the line whose `append` was cut comes back whole or not at all; no line comes back twice;
- the spool goes on working after the replay.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.profiles import FUZZ
from voiceplat.storage import spool as spool_module
from voiceplat.storage.spool import Spool


class Crash(BaseException):
    """The process died here (BaseException: no `except Exception` in the code stops it)."""


class CrashingOs:
    """`os` for the spool module: the `crash_at`-th mutating call is cut and raises Crash."""

    MUTATING = ("write", "pwrite", "ftruncate", "replace")

    def __init__(self, crash_at: int, keep: float) -> None:
        self.crash_at = crash_at
        self.keep = keep
        self.calls = 0
        self.fds: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name == "open":
            return self._open
        if name == "close":
            return self._close
        if name not in self.MUTATING:
            return real
        return lambda *args: self._mutate(name, real, *args)

    def _open(self, *args: Any) -> int:
        fd = os.open(*args)
        self.fds.add(fd)
        return fd

    def _close(self, fd: int) -> None:
        self.fds.discard(fd)
        os.close(fd)

    def _mutate(self, name: str, real: Any, *args: Any) -> Any:
        self.calls += 1
        if self.calls != self.crash_at:
            return real(*args)
        if name in ("write", "pwrite"):
            data = args[1]
            cut = data[: int(len(data) * self.keep)]
            if cut:
                real(args[0], cut, *args[2:])
        elif self.keep >= 0.5:  # a truncate or rename: done, or not yet
            real(*args)
        raise Crash(f"crash in {name} #{self.calls}")

    def die(self) -> None:
        """Closes what the dead process held open, without fsync (the page cache keeps it)."""
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass  # closed by the spool before it died


@dataclass
class Model:
    appended: list[bytes] = field(default_factory=list)
    """Lines whose append returned, in order."""
    acked: int = 0
    """How many of them an ack that returned covers."""
    cut_append: bytes | None = None
    cut_ack: int = 0
    """Lines of the ack the crash cut (0: it did not cut one)."""


def _line(index: int, pad: int) -> bytes:
    """A spool line as clean.encode_item writes one (JSON, no newline inside), unique by index."""
    return b'{"k":"turn","i":%d,"pad":"%s"}\n' % (index, b"x" * pad)


OPS = st.lists(
    st.tuples(st.sampled_from(["append", "ack"]), st.integers(0, 300)), min_size=1, max_size=16
)


def _run(spool: Spool, ops: list[tuple[str, int]], model: Model) -> None:
    for op, n in ops:
        if op == "append":
            line = _line(len(model.appended), n)
            model.cut_append = line
            spool.append(line)
            model.cut_append = None
            model.appended.append(line)
        else:
            batch = spool.read(max_items=1 + n % 5, max_bytes=1 << 20)
            if not batch:
                continue
            model.cut_ack = len(batch)
            spool.ack(batch[-1][1], len(batch))
            model.cut_ack = 0
            model.acked += len(batch)


def _replay(path: Path) -> tuple[Spool, list[bytes]]:
    spool = Spool(path)
    left = spool.open()
    lines = [line for line, _ in spool.read(max_items=10_000, max_bytes=1 << 24)]
    assert left == len(lines) == spool.pending
    return spool, lines


@FUZZ
@given(
    before=OPS,
    ops=OPS,
    crash_at=st.integers(1, 40),
    keep=st.floats(0, 1),
    restart=st.booleans(),
)
@example(  # the file emptied, the crash before its offset is: nothing to replay
    before=[("append", 5), ("append", 5)], ops=[("ack", 1)], crash_at=2, keep=1.0, restart=False
)
@example(  # a torn offset write (it goes to the temporary file)
    before=[("append", 5)] * 3, ops=[("ack", 0)], crash_at=2, keep=0.6, restart=False
)
def test_a_crash_at_any_byte_loses_and_duplicates_nothing(
    before: list[tuple[str, int]],
    ops: list[tuple[str, int]],
    crash_at: int,
    keep: float,
    restart: bool,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "postgres.jsonl"
        model = Model()
        spool = Spool(path)
        spool.open()
        _run(spool, before, model)  # a history the crashing run starts from
        if restart:  # ... left by a run that closed cleanly
            spool.close()
            spool = Spool(path)
            spool.open()
        crashing = CrashingOs(crash_at, keep)
        with mock.patch.object(spool_module, "os", crashing):
            try:
                _run(spool, ops, model)
            except Crash:
                pass
        crashing.die()
        if spool._fd is not None:  # the crash may have come before any patched call
            os.close(spool._fd)

        spool, replayed = _replay(path)
        unacked = model.appended[model.acked :]
        allowed = [unacked, unacked[model.cut_ack :]]
        if model.cut_append is not None:
            allowed += [[*lines, model.cut_append] for lines in allowed]
        assert replayed in allowed
        assert len(set(replayed)) == len(replayed)

        # It goes on: what is appended now comes after the replayed lines, once.
        spool.append(_line(999, 1))
        batch = spool.read(max_items=10_000, max_bytes=1 << 24)
        assert [line for line, _ in batch] == [*replayed, _line(999, 1)]
        spool.ack(batch[0][1], 1)
        spool.close()
        _, left = _replay(path)
        assert left == [*replayed, _line(999, 1)][1:]
