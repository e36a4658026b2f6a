"""The real local LLM (Qwen2.5-Coder-1.5B on llama.cpp), loaded once per test module that asks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from voiceplat.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppSettings

LLM_HANG_S = 60.0
"""The provider's timeout (its own work; the queue is not counted): only a hang reaches it."""


@pytest.fixture(scope="module")
def llm() -> Iterator[LlamaCppLLM]:
    pytest.importorskip("llama_cpp")
    provider = LlamaCppLLM(
        LlamaCppSettings(
            provider="llama_cpp", temperature=0.0, max_tokens=60, timeout_s=LLM_HANG_S
        ),
        {},
    )
    if problems := provider.problems():
        pytest.skip("; ".join(problems))
    asyncio.run(provider.start())
    print(f"\nqwen2.5-coder-1.5b: model load {provider.load_s:.2f} s")
    yield provider
    asyncio.run(provider.aclose())
