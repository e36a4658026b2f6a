"""The `openai` LLM provider against a real OpenAI-compatible server: llama-cpp-python's own
(`python -m llama_cpp.server`, the `server` extra) serving the shipped Qwen GGUF.

This is the "many robot processes share one model server" path: the robots' `llm` section says
`{"provider": "openai", "base_url": "http://<server>:8000/v1", "model": "<alias>"}` and no process
loads the model itself. Two callers ask at once (two robot processes, in production) and both get
their whole short answer; a wrong key is refused.

The server runs with `--interrupt_requests False`: its default (True) ends a streaming answer
with [DONE] as soon as another request waits for the model (llama_cpp/server/app.py), which on a
server shared by robots would cut one caller's answer short whenever another caller speaks.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.child_process import output_of, wait_listening
from voiceplat.providers.base import Message, ProviderError
from voiceplat.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppSettings
from voiceplat.providers.llm.openai import OpenAILLM

MODEL = "qwen2.5-coder-1.5b"
ALIAS = "qwen-shared"
SERVER_KEY = "local-server-key-0123456789"
HANG_S = 60.0
"""Model load plus a few tokens take seconds here; only a hang reaches this."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_file() -> Path:
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
    local = LlamaCppLLM(LlamaCppSettings(provider="llama_cpp", model=MODEL), {})
    if problems := local.problems():
        pytest.skip("; ".join(problems))
    from voiceplat.models.assemble import ensure_model_file

    return ensure_model_file(MODEL, progress=False)


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    path = model_file()
    port = free_port()
    log = tmp_path / "llama_server.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(path), "--model_alias", ALIAS, "--api_key", SERVER_KEY,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "1024", "--n_threads", "2", "--verbose", "False",
            "--interrupt_requests", "False",
            stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        await wait_listening(process, port, log, timeout_s=HANG_S)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), HANG_S)
            except TimeoutError:
                process.kill()
                await process.wait()
    print(f"\nllama_cpp.server output (end):\n{output_of(log, 600)}")


def make_llm(url: str, key: str) -> OpenAILLM:
    settings = OpenAILLM.Settings(
        provider="openai",
        base_url=url,
        model=ALIAS,
        temperature=0.0,
        max_tokens=8,
        timeout_s=HANG_S,
        retries=0,
    )
    return OpenAILLM(settings, {"OPENAI_API_KEY": key})


MESSAGES = [
    Message("system", "You answer with numbers only."),
    Message("user", "Count from 1 to 3, separated by spaces."),
]


async def pieces_of(llm: OpenAILLM) -> list[str]:
    try:
        return [piece async for piece in llm.stream(MESSAGES)]
    finally:
        await llm.aclose()


async def test_two_callers_share_the_llama_cpp_server(server_url: str):
    first, second = await asyncio.gather(
        pieces_of(make_llm(server_url, SERVER_KEY)), pieces_of(make_llm(server_url, SERVER_KEY))
    )
    assert len(first) >= 3, first  # streamed token by token, not one final blob
    assert "".join(first).split()[:3] == ["1", "2", "3"], first
    assert "".join(second) == "".join(first)  # temperature 0: neither answer was cut short

    with pytest.raises(ProviderError) as caught:
        await pieces_of(make_llm(server_url, "not-the-key-987654321"))
    assert "HTTP 401" in str(caught.value)
    assert "not-the-key-987654321" not in str(caught.value)
