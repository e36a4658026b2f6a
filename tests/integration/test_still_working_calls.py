"""A slow answer over a real WebSocket: the robot with fake providers (its LLM's first token 8 s
after it is asked) and the simulated caller. The caller hears the filler, then still-working
phrases every `hold_repeat_ms` of silence, then the whole answer. 127.0.0.1 only; the delays are
the fakes' own, so a slow machine only shifts when things happen, not what the record says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.ingress_checks import HELLO, final_records
from voiceplat.simulator import Say, WaitQuiet, run_call

REPLY = "Адрес клиники: улица Ленина, дом пять."
MS_PER_CHAR = 60  # the fake TTS
BYTES_PER_MS = 16  # 8 kHz s16le


async def test_a_slow_answer_is_covered_by_still_working_phrases(
    make_robot: Callable[..., Path], robot_server: Callable[..., Any]
) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Какой у вас адрес?"]},
        llm={"provider": "fake", "reply": REPLY, "delay_ms": 8000},
        filler_text="Так…",
        hold_repeat_texts=["Минутку…", "Ещё секунду…"],
        hold_repeat_ms=1500,
        hold_repeat_max=4,
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), WaitQuiet(3.0)], answer_timeout_s=60)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    answer = next(t for t in record["turns"] if t["role"] == "robot" and t["idx"] > 0)
    assert answer["text"] == REPLY  # the phrases are not part of what the answer said
    log = record["pipeline_log"]
    phrases = [e["data"] for e in log if e["event"] == "still_working"]
    assert len(phrases) >= 2, log
    assert [p["repeat"] for p in phrases] == list(range(1, len(phrases) + 1))
    assert [p["text"] for p in phrases[:2]] == ["Минутку…", "Ещё секунду…"]
    assert {p["turn"] for p in phrases} == {answer["idx"]}
    fillers = [e["data"] for e in log if e["event"] == "filler"]
    assert fillers == [{"turn": answer["idx"], "text": "Так…", "opening": True}]  # still once
    # The filler and the phrases come before the answer's first words, never after them.
    names = [e["event"] for e in log if e["event"] in ("filler", "still_working", "tts_chunk")]
    first_words = names.index("tts_chunk")
    assert set(names[first_words:]) == {"tts_chunk"}
    # The caller heard the greeting, the filler and each phrase apart (the last phrase may run
    # into the answer when the LLM's first token came just after it), then the whole answer.
    heard = result.answers[1:]
    assert len(heard) in (len(phrases) + 1, len(phrases) + 2)
    answered = heard[-1]
    assert all(a.end_ms is not None and a.end_ms < answered.start_ms for a in heard[:-1])
    assert answered.bytes >= 0.95 * len(REPLY) * MS_PER_CHAR * BYTES_PER_MS
