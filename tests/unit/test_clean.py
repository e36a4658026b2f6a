"""Record items as clean JSON lines: what every store can take, and what was changed."""

from __future__ import annotations

import json

from voiceplat.storage.clean import MAX_DEPTH, MAX_STRING, Cleaner, encode_item
from voiceplat.storage.records import CallOpened, CallRecord, TurnRecord, TurnWritten


def nested(depth: int) -> dict:
    value: dict = {}
    node = value
    for _ in range(depth):
        node["x"] = {}
        node = node["x"]
    return value


def test_ordinary_values_pass_unchanged() -> None:
    cleaner = Cleaner()
    value = {"text": "Здравствуйте 👋", "n": 3, "f": 0.5, "ok": True, "none": None, "list": [1]}
    assert cleaner.value(value) == value
    assert cleaner.fixes == []


def test_what_stores_refuse_is_fixed_and_reported() -> None:
    cleaner = Cleaner()
    cleaned = cleaner.value(
        {
            "nul\x00key": "a\x00b",
            "surrogate": "x\ud800y",
            "nan": float("nan"),
            "big": 10**30,
            "deep": nested(MAX_DEPTH + 10),
        }
    )
    assert cleaned["nulkey"] == "ab"
    assert cleaned["surrogate"] == "x\ufffdy"
    assert cleaned["nan"] is None
    assert cleaned["big"] == str(10**30)
    assert isinstance(json.dumps(cleaned), str)
    text = " ".join(cleaner.fixes)
    for reason in ("NUL", "lone surrogate", "nan stored as null", "64 bits", "nested deeper"):
        assert reason in text


def test_absurd_nesting_does_not_crash() -> None:
    cleaner = Cleaner()
    cleaned = cleaner.value({"deep": nested(5000)})
    assert isinstance(json.dumps(cleaned), str)


def test_a_100kb_transcript_is_kept_whole_and_a_huge_one_is_cut() -> None:
    cleaner = Cleaner()
    assert cleaner.value("я" * 100_000) == "я" * 100_000
    assert len(cleaner.value("y" * (MAX_STRING + 5))) == MAX_STRING
    assert len(cleaner.fixes) == 1


def test_encode_item_is_one_json_line_with_the_kind() -> None:
    call = CallRecord(call_id="c1", robot="r", mode="pipeline", metadata={"k": "v\x00"})
    turn = TurnRecord(call_id="c1", idx=0, role="user", text="привет\x00")
    opened, written = encode_item(CallOpened(call)), encode_item(TurnWritten(call, turn))
    assert opened.line.endswith(b"\n") and opened.line.count(b"\n") == 1
    entry = json.loads(written.line)
    assert entry["k"] == "turn" and entry["turn"]["text"] == "привет"
    assert entry["call"]["metadata"] == {"k": "v"}
    assert written.fixes  # reported, once per call, by the log
