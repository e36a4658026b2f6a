"""Writes ru_human.tsv: real recorded Russian speech for the ASR benchmark, from Debian.

Debian's `asterisk-core-sounds-ru-wav` holds a professional speaker's telephone prompts (8 kHz,
16-bit; "Provided by: Maxim Topal, ivrvoice.ru", CC-BY-3.0), and `asterisk-core-sounds-ru` their
texts. The audio stays in the package (apt-get install asterisk-core-sounds-ru
asterisk-core-sounds-ru-wav); this script picks the prompts a WER can be computed on and writes
their file names and reference texts:

    python3 benchmarks/data/asr/make_ru_human.py

Kept: three words or more, Cyrillic only (no digits or Latin letters: their spelling in a
transcript is a matter of convention), no spelled-out letters ("Эм Ай Эс Ди Эн") or bracketed
symbols ("Пробел [ ]"), at most 20 s (a caller's turn; one clip runs 40 s), each text once. The
package's texts have spelling mistakes that would count as recognition errors; `SPELLING` fixes
them (mostly "что бы" for "чтобы", 30 prompts).
"""

from __future__ import annotations

import gzip
import re
import wave
from pathlib import Path

SOUNDS = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-ru/core-sounds-ru.txt.gz")
OUT = Path(__file__).resolve().parent / "ru_human.tsv"
MAX_SECONDS = 20.0
SPELLING = [
    (r"\b([Чч])то бы\b", r"\1тобы"),  # "Что бы выйти из меню" is "Чтобы выйти из меню"
    (r"\bчтобы бы\b", "чтобы"),
    (r"\bзавршить\b", "завершить"),
    (r"\bвзёздочка\b", "звёздочка"),
    (r"\bза тем\b", "затем"),
    (r"\bнеопределен или неразрешен, по-этому\b", "не определен или не разрешен, поэтому"),
]


def prompts() -> list[tuple[str, str]]:
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for line in gzip.open(TEXTS, "rt", encoding="utf-8"):
        if line.startswith(";") or ":" not in line:
            continue
        key, text = (part.strip() for part in line.split(":", 1))
        text = re.sub(rf"^{re.escape(key)}:\s*", "", text)  # one line repeats its key
        text = re.sub(r"\s+", " ", text)
        for wrong, right in SPELLING:
            text = re.sub(wrong, right, text)
        words = re.findall(r"\w+", text)
        if "[" in text or "(" in text or re.search(r"\d|[A-Za-z]", text) or len(words) < 3:
            continue  # tones and silences are described in brackets
        if all(len(word) <= 2 for word in words):
            continue  # letters spelled out
        audio = SOUNDS / f"{key}.wav"
        if text in seen or not audio.is_file() or seconds(audio) > MAX_SECONDS:
            continue
        seen.add(text)
        kept.append((f"{key}.wav", text))
    return kept


def seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


if __name__ == "__main__":
    rows = prompts()
    OUT.write_text("".join(f"{name}\t{text}\n" for name, text in rows), encoding="utf-8")
    print(f"{len(rows)} prompts -> {OUT}")
