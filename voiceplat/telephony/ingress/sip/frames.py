"""Audio between PJSIP's byte vectors and Python bytes, fast enough for every 20 ms of every call.

SWIG's `bytes(ByteVector)` walks the vector one element at a time (about 0.2 ms for one 20 ms
frame: 100 calls would take a core). A `std::vector<unsigned char>` in libstdc++ (what the
manylinux wheel is built with) is three pointers: begin, end, end of storage. We read and write
through `begin` with ctypes. `layout_ok()` checks that reading at import; if it ever fails (another
C++ library), the slow, safe copy is used instead.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pjsua2 as pj

_Pointers = ctypes.c_void_p * 3


def _fast_read(vector: Any) -> bytes:
    begin, end, _ = _Pointers.from_address(int(vector.this))
    if not begin or not end:
        return b""
    return ctypes.string_at(begin, end - begin)


def _slow_read(vector: Any) -> bytes:
    return bytes(vector)


def layout_ok() -> bool:
    probe = bytes(range(256)) * 2
    try:
        return _fast_read(pj.ByteVector(probe)) == probe and _fast_read(pj.ByteVector()) == b""
    except (ValueError, TypeError, OSError):
        return False


read_vector = _fast_read if layout_ok() else _slow_read
"""The bytes a `pj.ByteVector` (a frame's `buf`) holds."""


class FrameWriter:
    """Fills outgoing frames of one fixed size without building a new vector for each."""

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._vector = pj.ByteVector(bytes(frame_bytes))
        self._fast = read_vector is _fast_read

    def fill(self, frame: Any, data: bytes) -> None:
        """Puts `data` (exactly frame_bytes long) into `frame` as an audio frame."""
        if self._fast:
            begin = _Pointers.from_address(int(self._vector.this))[0]
            assert begin  # a vector of frame_bytes > 0 has storage
            ctypes.memmove(begin, data, self.frame_bytes)
            frame.buf = self._vector  # a C++ copy of frame_bytes: cheap
        else:
            frame.buf = pj.ByteVector(data)
        frame.size = self.frame_bytes
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
