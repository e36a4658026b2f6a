"""Prefix reuse for one shared llama.cpp context serving many calls.

A llama.cpp context holds the KV cache of the last sequence it evaluated, and llama-cpp-python
reuses the longest common prefix with it. With one call that covers the whole history. With several
calls taking turns, call A's next prompt only shares the system prompt with call B's last one, so
A's history would be evaluated again on every turn (~60 tokens/s on two cores: seconds).

`StateCache` keeps a snapshot of the context after each generation, keyed by its tokens, and before
the next one restores the snapshot sharing the longest prefix with the new prompt. A snapshot is the
KV cells in use (~28 KB a token for Qwen2.5 1.5B: 6 MB for 200 tokens) and takes ~20 ms to save
or restore, against seconds of prompt evaluation. It deliberately skips `Llama.save_state()`, which
also copies the n_batch x n_vocab score matrix (120+ MB for Qwen's 152k vocabulary, ~0.3 s).

`prefill` evaluates the prompt in small slices, so a cancelled generation stops within a slice
instead of after the whole prompt. Only the public attributes `input_ids`, `n_tokens`, `ctx` and
`eval()` of `llama_cpp.Llama` are used.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from llama_cpp import Llama

PREFILL_SLICE = 32
"""Tokens evaluated between checks of the stop flag (~0.5 s on two cores for 1.5B)."""
MIN_GAIN = 16
"""A snapshot is restored only if it covers this many more prompt tokens than the live context."""


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if differ.size else n


def live_tokens(llm: Llama) -> np.ndarray:
    return llm.input_ids[: llm.n_tokens]


def prefill(
    llm: Llama, tokens: Sequence[int], stop: threading.Event, leave_last: bool = True
) -> bool:
    """Evaluates the prompt, reusing the live prefix; False if `stop` was set on the way.

    With `leave_last`, the last token stays for `create_completion`, which then reuses everything
    before it and decodes that one token, so sampling starts from fresh logits.
    """
    end = len(tokens) - 1 if leave_last else len(tokens)
    reuse = min(common_prefix(live_tokens(llm), tokens), end)
    llm.n_tokens = reuse  # eval() drops the KV cells after n_tokens before decoding
    for start in range(reuse, end, PREFILL_SLICE):
        if stop.is_set():
            return False
        llm.eval(tokens[start : min(start + PREFILL_SLICE, end)])
    return not stop.is_set()


class StateCache:
    """LRU of context snapshots keyed by their token sequences, bounded in bytes."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._pinned: set[tuple[int, ...]] = set()
        """Dialog openings (warm()): never evicted, so a busy robot never evaluates its system
        prompt (and tool block) again, which takes seconds."""
        self.restores = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def save(self, llm: Llama, *, pin: bool = False) -> None:
        """Snapshots the live context (call after a generation, on the model's thread); a
        pinned snapshot (a dialog opening) stays whatever else is saved."""
        if self.capacity_bytes <= 0 or llm.n_tokens == 0:
            return
        import llama_cpp

        key = tuple(int(token) for token in live_tokens(llm))
        size = llama_cpp.llama_state_get_size(llm.ctx)
        if size > self.capacity_bytes:
            return
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(llm.ctx, buffer, size)
        self._drop(key)
        self._entries[key] = bytes(memoryview(buffer)[:written])
        self._bytes += written
        if pin:
            self._pinned.add(key)
        # A snapshot whose tokens are a prefix of the new one is now redundant (unless pinned:
        # the call that extended it may be evicted, the opening must stay).
        for other in [k for k in self._entries if k != key and common_prefix(k, key) == len(k)]:
            if other not in self._pinned:
                self._drop(other)
        while self._bytes > self.capacity_bytes:
            oldest = next((k for k in self._entries if k not in self._pinned and k != key), None)
            if oldest is None:
                break
            self._drop(oldest)

    def restore_best(self, llm: Llama, tokens: Sequence[int]) -> int:
        """Loads the snapshot sharing the longest prefix with `tokens` if it beats the live one.

        Returns the number of prompt tokens the context now holds ready.
        """
        live = common_prefix(live_tokens(llm), tokens)
        best_key, best = None, live
        for key in self._entries:
            shared = common_prefix(key, tokens)
            if shared > best:
                best_key, best = key, shared
        if best_key is None or best < live + MIN_GAIN:
            return live
        import llama_cpp

        data = self._entries[best_key]
        self._entries.move_to_end(best_key)  # most recently used
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_set_data(llm.ctx, buffer, len(data)) != len(data):
            llm.n_tokens = 0  # a failed load leaves the context undefined: start over
            return 0
        llm.input_ids[: len(best_key)] = best_key
        llm.n_tokens = len(best_key)
        self.restores += 1
        return best

    def _drop(self, key: tuple[int, ...]) -> None:
        data = self._entries.pop(key, None)
        if data is not None:
            self._bytes -= len(data)
