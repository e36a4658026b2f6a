"""Turn-taking in whole calls over a real WebSocket: the robot with fake providers (and the real
echo guard and VAD), the simulated caller. Assertions are about what the caller heard and what
the records say; the delays below are the fakes' own, so a slow machine only makes gaps longer."""

from __future__ import annotations

import shutil

from tests.conftest import FIXTURES
from tests.integration.test_calls import final_records
from voiceplat.simulator import BargeIn, Pause, Say, WaitQuiet, run_call

HELLO = FIXTURES / "ru_hello.wav"
QUESTION = FIXTURES / "ru_question.wav"
NOISE = FIXTURES / "noise_burst.wav"
CLICK = FIXTURES / "click.wav"
AGA = FIXTURES / "ru_aga.wav"
LONG = FIXTURES / "ru_long.wav"
LONG_REPLY = "Это довольно длинный ответ робота о ценах, часах работы и адресе клиники."


def events(record: dict, name: str) -> list[dict]:
    return [e["data"] for e in record["pipeline_log"] if e["event"] == name]


async def test_hallucinated_words_on_noise_are_not_a_turn(make_robot, robot_server) -> None:
    """Whisper writes «Продолжение следует...» on noise: recorded as ignored, never answered."""
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Продолжение следует...", "Сколько стоит приём?"]},
        llm={"provider": "fake", "reply": "Полторы тысячи рублей."},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(NOISE), WaitQuiet(1.5), Say(HELLO)])

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    users = [t for t in record["turns"] if t["role"] == "user"]
    assert [(t["text"], t["ignored"]) for t in users] == [
        ("Продолжение следует...", "hallucination"),
        ("Сколько стоит приём?", None),
    ]
    robots = [t["text"] for t in record["turns"] if t["role"] == "robot"]
    assert robots == ["Здравствуйте! Чем могу помочь?", "Полторы тысячи рублей."]


async def test_unclear_speech_is_asked_again_at_most_twice(make_robot, robot_server) -> None:
    unsure = "Блан.|avg_logprob=-1.6|no_speech_prob=0.2"
    robot = make_robot(
        asr={"provider": "fake", "texts": [unsure, unsure, unsure]},
        llm={"provider": "fake", "reply": "Отвечаю."},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(LONG), Say(LONG), Say(LONG)])

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    turns = [(t["role"], t["text"], t.get("ignored")) for t in record["turns"]]
    repeat = "Извините, не расслышала, повторите, пожалуйста."
    assert turns[1:] == [
        ("user", "Блан.", "unclear: low_confidence"),
        ("robot", repeat, None),
        ("user", "Блан.", "unclear: low_confidence"),
        ("robot", repeat, None),
        ("user", "Блан.", None),  # a third time: answered as heard, the call goes on
        ("robot", "Отвечаю.", None),
    ]


async def test_noise_over_the_robot_does_not_stop_it(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно"]},
        llm={"provider": "fake", "reply": LONG_REPLY},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), BargeIn(CLICK), BargeIn(NOISE)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    assert not any(e.type == "killAudio" for e in result.events)
    (record,) = await final_records(robot)
    assert not any(t["interrupted"] for t in record["turns"])
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == ["Расскажите подробно"]


async def test_misheard_backchannel_resumes_instead_of_answering(make_robot, robot_server) -> None:
    """«угу» heard as «Блан.» with low confidence: not an interruption, not a question."""
    robot = make_robot(
        asr={
            "provider": "fake",
            "texts": ["Расскажите подробно", "Блан.|avg_logprob=-1.4|no_speech_prob=0.3"],
        },
        llm={"provider": "fake", "reply": LONG_REPLY},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), BargeIn(AGA)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    answer = next(t for t in record["turns"] if t["text"] == LONG_REPLY)
    assert not answer["interrupted"] and answer["resumed"] == 1
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == ["Расскажите подробно"]
    (resumed,) = events(record, "robot_resumed")
    assert resumed["reason"] == "low confidence"
    barge = result.utterances[1]
    assert barge.resumed is True  # the caller heard the same turn's audio again after the cut


async def test_real_interruption_stops_the_robot_for_good(make_robot, robot_server) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Расскажите подробно", "Подождите, подождите."]},
        llm={"provider": "fake", "reply": LONG_REPLY},
        tts={"provider": "fake", "ms_per_char": 80},
    )
    url, _, _ = await robot_server(robot)
    wait = FIXTURES / "ru_wait.wav"
    result = await run_call(url, [Say(HELLO), BargeIn(wait)], barge_in_after_s=1.0)

    assert result.ok, result.errors
    barge = result.utterances[1]
    (record,) = await final_records(robot)
    log = "\n".join(f"{e['event']} {e['data']}" for e in record["pipeline_log"])
    assert barge.kill_audio is True and not barge.resumed, log
    cut = next(t for t in record["turns"] if t["text"] == LONG_REPLY)
    assert cut["interrupted"] and cut["heard_text"]
    users = [t["text"] for t in record["turns"] if t["role"] == "user"]
    assert users == ["Расскажите подробно", "Подождите, подождите."]
    (paused,) = events(record, "robot_paused")
    assert paused["talk_over_ms"] >= 280  # paused at min_speech_ms of the caller's speech


async def test_robot_does_not_interrupt_itself_on_its_own_echo(make_robot, robot_server) -> None:
    """The robot's greeting (real recorded speech) comes back at -20 dB, 120 ms later, through
    mu-law. With the echo guard the robot talks on; without it, the same line stops it."""

    async def call(echo_enabled: bool) -> tuple[list, dict]:
        robot = make_robot(
            name=f"echo{echo_enabled}",
            greeting_text=None,
            echo={"enabled": echo_enabled},
            vad={"aggressiveness": 2},
        )
        shutil.copy(LONG, robot / "greeting.wav")
        url, _, _ = await robot_server(robot)
        result = await run_call(url, [Pause(8.0)], echo_db=-20, echo_ms=120)
        assert result.ok, result.errors
        (record,) = await final_records(robot)
        return result.events, record

    guarded_events, guarded = await call(True)
    assert not any(e.type == "killAudio" for e in guarded_events)
    assert not events(guarded, "robot_paused") and not events(guarded, "speech_start")
    greeting = guarded["turns"][0]
    assert greeting["role"] == "robot" and not greeting["interrupted"]

    _, unguarded = await call(False)
    assert events(unguarded, "speech_start")  # the echo alone is speech to the VAD


async def test_slow_tts_starvation_is_measured_and_a_filler_covers_it_once(
    make_robot, robot_server
) -> None:
    """Each sentence takes 0.9 s to synthesise and lasts 0.2-0.5 s: the line must go quiet
    inside the answer. Robot and caller both measure it; the filler is said once."""
    reply = "Да. Конечно. Хорошо. Записала."
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Запишите меня"]},
        llm={"provider": "fake", "reply": reply},
        tts={"provider": "fake", "ms_per_char": 60, "delay_ms": 900},
        filler_text="Так…",
        greeting_text=None,  # a greeting as slow would start over the caller
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO), WaitQuiet(3.0)], answer_timeout_s=30)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    robot_turns = [t for t in record["turns"] if t["role"] == "robot"]
    assert [t["text"] for t in robot_turns] == [reply], "\n".join(
        f"{e['event']} {e['data']}" for e in record["pipeline_log"]
    )
    (answer,) = robot_turns
    assert answer["starved_max_ms"] >= 300 and answer["starved_ms"] >= answer["starved_max_ms"]
    fillers = events(record, "filler")
    assert len(fillers) == 1 and fillers[0]["turn"] == answer["idx"]
    (heard,) = [t for t in result.robot_turns if t.turn == answer["idx"]]
    assert heard.starved_max_ms is not None and heard.starved_max_ms >= 300


async def test_slow_llm_first_chunk_goes_by_time_budget(make_robot, robot_server) -> None:
    """An answer with no punctuation for a long while: the first chunk is cut at a word boundary
    by the time budget, so the caller hears the start before the LLM reaches the comma."""
    reply = "Доставка в выходные может быть включена в стоимость заказа если он крупный"
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Доставка в выходные есть?"]},
        llm={"provider": "fake", "reply": reply, "token_delay_ms": 150},
        chunking={"first_chunk_budget_ms": 300},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)], answer_timeout_s=30)

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    answer = next(t for t in record["turns"] if t["role"] == "robot" and t["text"] == reply)
    chunks = [e["text"] for e in events(record, "tts_chunk") if e["turn"] == answer["idx"]]
    assert " ".join(chunks) == reply
    # Without punctuation the old splitter waited for the end: one chunk. By time, the first
    # goes early, and never right after a word that leans on the next ("в", "если").
    assert len(chunks) >= 2
    assert chunks[0].split()[-1] not in {"в", "и", "на", "не", "если"}


async def test_a_pause_after_unfinished_words_does_not_end_the_turn(
    make_robot, robot_server
) -> None:
    """«Я хотел бы…», a second of silence, «…записаться к терапевту.»: longer than the silence
    setting (800 ms), but the words so far lean on what comes next, so it is one turn."""
    from voiceplat.audio.pcm import Pcm
    from voiceplat.audio.wav import read_wav

    robot = make_robot(
        asr={"provider": "fake", "texts": ["Я хотел бы", "Я хотел бы записаться к терапевту."]},
        llm={"provider": "fake", "reply": "Записала."},
        vad={"silence_ms": 800, "speculative_pause_ms": 120},
        end_of_turn={"model": "none", "text_cue": True},
    )
    hello = read_wav(HELLO)
    gap = bytes(int(hello.rate * 1.0) * 2)
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(Pcm(hello.data + gap + hello.data, hello.rate))])

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    users = [t["text"] for t in record["turns"] if t["role"] == "user"]
    assert users == ["Я хотел бы записаться к терапевту."]


async def test_speculative_answer_is_ready_when_the_turn_ends(make_robot, robot_server) -> None:
    """The answer is written, and its first chunk synthesised, in the end-of-turn silence."""
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Сколько стоит приём?"]},
        llm={"provider": "fake", "reply": "Полторы тысячи рублей. Записать вас?"},
        vad={"silence_ms": 800, "speculative_pause_ms": 120, "speculative_answer": True},
    )
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(HELLO)])

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    answer = record["turns"][-1]
    assert answer["text"] == "Полторы тысячи рублей. Записать вас?"
    (taken,) = events(record, "speculative_answer")
    assert taken["turn"] == answer["idx"]
    assert answer["tts_ttfb_ms"] == 0.0  # its first chunk was synthesised before the turn began
    assert answer["llm_ttft_ms"] is not None


async def test_speculative_answer_is_dropped_when_the_caller_goes_on(
    make_robot, robot_server
) -> None:
    robot = make_robot(
        asr={"provider": "fake", "texts": ["Здравствуйте", "Здравствуйте, сколько стоит приём?"]},
        llm={"provider": "fake"},  # echoes the caller: "Вы сказали: …"
        vad={"silence_ms": 800, "speculative_pause_ms": 120, "speculative_answer": True},
    )
    from voiceplat.audio.pcm import Pcm
    from voiceplat.audio.wav import read_wav

    hello = read_wav(HELLO)
    gap = bytes(int(hello.rate * 0.5) * 2)  # a pause shorter than silence_ms: one turn
    url, _, _ = await robot_server(robot)
    result = await run_call(url, [Say(Pcm(hello.data + gap + hello.data, hello.rate))])

    assert result.ok, result.errors
    (record,) = await final_records(robot)
    said = [(t["role"], t["text"]) for t in record["turns"]][1:]
    assert said == [
        ("user", "Здравствуйте, сколько стоит приём?"),
        ("robot", "Вы сказали: Здравствуйте, сколько стоит приём?."),
    ]
    # The answer written at the first pause was dropped when the caller went on; the one written
    # at the last pause, to the whole utterance, is the one said.
    log = [(e["event"], e["data"]) for e in record["pipeline_log"]]
    assert ("asr_speculative", {"used": False}) in log
    assert len(events(record, "speculative_answer")) == 1
