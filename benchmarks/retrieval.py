"""Knowledge retrieval per turn: what `direct_answer` + `search` cost on the robot's knowledge file.

    .venv/bin/python benchmarks/retrieval.py [--robot robots/pipeline_russian] [--passages 200]
        [--rounds 20] [--show]

Two indexes: the robot's own knowledge files, and the same files repeated under headings of
their own ("Филиал 2", "Филиал 3"…) until there are about `--passages` passages, the size the
goal is set for (< 5 ms a turn). The caller turns are the `say` of every case in
benchmarks/data/answers/clinic.jsonl (the answers benchmark's), else a few built-in questions.
"known: facts given" counts its `known` cases whose required facts (as lemmas) are all in what
the LLM would be given (the direct answer, else the passages found): retrieval's share of the
answers' correctness. "unknown: direct" counts unknown-answer cases answered directly (goal 0).

A turn is what the robot does with a caller's words: `direct_answer` then `search` (the cached
scores make the second cheap). "cold" is each turn's first time in the process: words the
lemma cache has not seen are parsed by pymorphy3; "warm" are the `--rounds` later passes.
Index build time is for the whole set of files, after the first use in the process (loading
pymorphy3's dictionaries and importing bm25s), which is printed apart. Prints a Markdown table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks` and `voiceplat`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import markdown, pct
from voiceplat.knowledge.index import KnowledgeBase, knowledge_files
from voiceplat.knowledge.lemmas import lemmas
from voiceplat.knowledge.passages import Passage, parse_passages
from voiceplat.knowledge.settings import KnowledgeSettings

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "benchmarks" / "data" / "answers" / "clinic.jsonl"
BUILT_IN_TURNS = [
    "Сколько стоит приём терапевта?",
    "Где вы находитесь?",
    "Есть ли у вас парковка?",
    "До скольки вы работаете в субботу?",
    "Когда принимает кардиолог?",
    "Нужно ли сдавать кровь натощак?",
    "Можно ли оплатить картой?",
    "Здравствуйте, меня зовут Анна, я хотела узнать, можно ли прийти с ребёнком без записи",
]
_HEADING = re.compile(r"^(#{1,5})(\s)", re.MULTILINE)
_DIGIT_GROUPS = re.compile(r"(\d) (\d{3})\b")  # "1 500" is "1500"


def cases() -> list[dict]:
    if not CASES.exists():
        return [{"say": t, "category": "known", "half": "tune", "must": []} for t in BUILT_IN_TURNS]
    return [json.loads(line) for line in CASES.read_text("utf-8").splitlines() if line.strip()]


def _lemma_set(text: str) -> set[str]:
    return set(lemmas(_DIGIT_GROUPS.sub(r"\1\2", text)))


def facts_found(kb: KnowledgeBase, case: dict) -> bool:
    """Every required fact (one of its alternatives, as lemmas) is in what the LLM would get."""
    direct = kb.direct_answer(case["say"])
    given = [direct.passage] if direct else [hit.passage for hit in kb.search(case["say"])]
    words = _lemma_set(" ".join(f"{p.title} {p.text}" for p in given))
    return all(
        any(_lemma_set(alternative) <= words for alternative in group) for group in case["must"]
    )


def robot_passages(robot: Path, settings: KnowledgeSettings) -> list[tuple[str, str]]:
    return [
        (path.relative_to(robot).as_posix(), path.read_text("utf-8-sig"))
        for path in knowledge_files(robot, settings)
    ]


def enlarged(files: list[tuple[str, str]], settings: KnowledgeSettings, size: int) -> list[Passage]:
    """The files repeated, each copy one heading level down under "# Филиал N", to ~`size`."""
    passages: list[Passage] = []
    copy = 1
    while len(passages) < size:
        for label, text in files:
            if copy > 1:
                text = f"# Филиал {copy}\n\n" + _HEADING.sub(r"#\1\2", text)
            passages += parse_passages(text, f"{copy}/{label}", settings.max_passage_chars)
        copy += 1
    return passages


def measure(kb: KnowledgeBase, turns: list[str], rounds: int) -> tuple[list[float], list[float]]:
    def turn_ms(text: str) -> float:
        start = time.perf_counter_ns()
        kb.direct_answer(text)
        kb.search(text)
        return (time.perf_counter_ns() - start) / 1e6

    cold = [turn_ms(text) for text in turns]
    warm = [turn_ms(text) for _ in range(rounds) for text in turns]
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot", type=Path, default=ROOT / "robots" / "pipeline_russian")
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--show", action="store_true", help="print each turn's hits")
    args = parser.parse_args()

    config = json.loads((args.robot / "config.json").read_text("utf-8"))
    settings = KnowledgeSettings.model_validate(config.get("knowledge") or {})
    files = robot_passages(args.robot, settings)
    if not files:
        sys.exit(f"{args.robot}: no knowledge file matches {settings.files}")
    all_cases = cases()
    turns = [case["say"] for case in all_cases]
    known = [case for case in all_cases if case["category"] == "known" and case["must"]]
    unknown = [case for case in all_cases if case["category"] == "unknown"]
    own = [
        p for label, text in files for p in parse_passages(text, label, settings.max_passage_chars)
    ]
    start = time.perf_counter_ns()
    KnowledgeBase(parse_passages("## Проба\n\nприём", "warm.md", 700), settings)
    first_use_ms = (time.perf_counter_ns() - start) / 1e6
    rows = []
    for name, passages in [
        ("robot's files", own),
        ("repeated", enlarged(files, settings, args.passages)),
    ]:
        start = time.perf_counter_ns()
        kb = KnowledgeBase(passages, settings)
        build_ms = (time.perf_counter_ns() - start) / 1e6
        cold, warm = measure(kb, turns, args.rounds)
        direct = sum(kb.direct_answer(text) is not None for text in turns)
        found = sum(bool(kb.search(text)) for text in turns)
        facts = {
            half: f"{sum(facts_found(kb, c) for c in known if c.get('half') == half)}"
            f"/{sum(c.get('half') == half for c in known)}"
            for half in ("tune", "heldout")
        }
        direct_unknown = sum(kb.direct_answer(case["say"]) is not None for case in unknown)
        cold_pct, warm_pct = pct(cold), pct(warm)
        rows.append(
            [
                name,
                len(passages),
                round(build_ms, 1),
                len(turns),
                cold_pct["p50"],
                cold_pct["p95"],
                warm_pct["p50"],
                warm_pct["p95"],
                warm_pct["max"],
                f"{100 * found / len(turns):.0f} %",
                f"{100 * direct / len(turns):.0f} %",
                facts["tune"],
                facts["heldout"],
                f"{direct_unknown}/{len(unknown)}",
            ]
        )
        if args.show and name == "robot's files":
            for case in all_cases:
                text = case["say"]
                hit = kb.direct_answer(text)
                given = "facts given" if facts_found(kb, case) else "facts MISSING"
                print(f"\n{case['category']}: {text} ({given})")
                print(f"  direct: {hit.passage.answer if hit else '-'}")
                for found_hit in kb.search(text):
                    print(
                        f"  {found_hit.score:.2f} {found_hit.passage.source} {found_hit.passage.title}"
                    )
    print(f"first use (pymorphy3's dictionaries, bm25s import): {first_use_ms:.0f} ms\n")
    print(
        markdown(
            [
                "index",
                "passages",
                "build ms",
                "turns",
                "cold p50 ms",
                "cold p95 ms",
                "warm p50 ms",
                "warm p95 ms",
                "warm max ms",
                "turns with passages",
                "direct answers",
                "known: facts given (tune)",
                "(heldout)",
                "unknown: direct",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
