"""The held-out end-of-turn set for benchmarks/end_of_turn.py (see there), made at run time.

`paused` clips: a Russian sentence with a 400–900 ms pause mid-sentence; `complete`: the same
sentences whole. Festival and espeak-ng read SENTENCES with a comma at the "|", so the words before
the pause carry the voice's continuation prosody, and the pause the voice made is stretched; the
recorded one-sentence telephone prompts (a human voice) are split at their longest inner pause.
All through the telephone band: 8 kHz, G.711 mu-law, a faint noise floor.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceplat.audio.g711 import ulaw_decode, ulaw_encode
from voiceplat.audio.pcm import CALL_RATE, Pcm
from voiceplat.audio.resample import resample
from voiceplat.audio.wav import read_wav

HUMAN_DIR = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
HUMAN_TSV = Path(__file__).resolve().parent / "data" / "asr" / "ru_human.tsv"
LEAD_S, TAIL_S = 0.3, 2.5
NOISE_RMS = 20.0
"""A faint noise floor (about −64 dBFS), as a line has: digital silence is not what VAD hears."""

# "|" marks the pause: read with a comma there, so the voice pauses with unfinished prosody.
SENTENCES = [
    "Я хотел бы, | записаться к терапевту на среду.",
    "Скажите, пожалуйста, | сколько стоит анализ крови?",
    "Мне нужно, | перенести приём на следующую неделю.",
    "Если можно, | запишите меня на утро.",
    "У меня вопрос, | по поводу вчерашнего заказа.",
    "Подскажите, | где находится ваш офис?",
    "Я звоню, | потому что не пришла посылка.",
    "Можно мне, | поговорить с оператором?",
    "Вчера вечером, | мне списали деньги дважды.",
    "Моя дочь, | заболела и не сможет прийти.",
    "Я бы хотела, | узнать про доставку в выходные.",
    "Когда вы, | сможете перезвонить мне?",
    "Дело в том, | что я потерял свой пароль.",
    "Мы с женой, | хотим оформить страховку.",
    "Завтра утром, | я буду дома до десяти.",
    "Нельзя ли, | отменить запись на пятницу?",
    "Я уже, | третий раз звоню по этому вопросу.",
    "Посмотрите, пожалуйста, | готовы ли мои анализы.",
    "Мне кажется, | в счёте есть ошибка.",
    "А если, | я приеду после шести вечера?",
    "Хочу уточнить, | есть ли парковка рядом с клиникой.",
    "Скажите, | принимает ли врач детей.",
    "Я живу, | на другом конце города.",
    "Можно ли, | оплатить заказ при получении?",
]


@dataclass(slots=True)
class Clip:
    name: str
    kind: str  # "paused" | "complete"
    pcm: bytes  # 8 kHz int16, telephone band
    speech_end_s: float
    """Where the speaker really finished (end of the last word), on the clip's clock."""


def _frames_rms(samples: np.ndarray, rate: int) -> np.ndarray:
    step = rate // 50
    count = len(samples) // step
    frames = samples[: count * step].astype(np.float64).reshape(count, step)
    return np.sqrt((frames**2).mean(axis=1))


def _trim(samples: np.ndarray, rate: int) -> np.ndarray:
    """The clip from its first to its last loud 20 ms frame (the voices pad with silence)."""
    rms = _frames_rms(samples, rate)
    loud = np.flatnonzero(rms > max(rms.max() * 0.02, 30))
    step = rate // 50
    return samples[loud[0] * step : (loud[-1] + 1) * step]


def _inner_pauses(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """Runs of quiet frames (>= 60 ms) inside the speech, as (first, end) frame indexes."""
    rms = _frames_rms(samples, rate)
    quiet = rms < max(rms.max() * 0.03, 40)
    runs, start = [], None
    for index, is_quiet in enumerate(quiet):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            if index - start >= 3 and start > 0:
                runs.append((start, index))
            start = None
    return runs


def _split_at(samples: np.ndarray, rate: int, where: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The clip cut at its inner pause nearest `where` (0..1 of its length), pause removed."""
    pauses = _inner_pauses(samples, rate)
    if not pauses:
        return None
    total = len(samples) / (rate // 50)
    first, end = min(pauses, key=lambda run: abs((run[0] + run[1]) / 2 - where * total))
    step = rate // 50
    return samples[: first * step], samples[end * step :]


def _telephone(samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    pcm = Pcm(samples.astype("<i2").tobytes(), rate)
    call = resample(pcm, CALL_RATE).to_numpy().astype(np.float64)
    peak = np.abs(call).max() or 1.0
    call = call * (0.7 * 32767 / peak)  # a caller at a normal level, not clipping
    call = call + rng.normal(0.0, NOISE_RMS, len(call))
    clipped = np.clip(call, -32768, 32767).astype("<i2").tobytes()
    return np.frombuffer(ulaw_decode(ulaw_encode(clipped)), dtype="<i2")


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def _clips_from(
    name: str, samples: np.ndarray, rate: int, where: float | None, rng: np.random.Generator
) -> list[Clip]:
    samples = _trim(samples, rate)
    lead, tail = _silence(LEAD_S, rate), _silence(TAIL_S, rate)
    whole = np.concatenate([lead, samples, tail])
    clips = [
        Clip(
            f"{name}/complete",
            "complete",
            _telephone(whole, rate, rng).tobytes(),
            LEAD_S + len(samples) / rate,
        )
    ]
    split = _split_at(samples, rate, where) if where is not None else None
    if split is not None:
        head, rest = split
        pause_s = float(rng.uniform(0.4, 0.9))
        paused = np.concatenate([lead, head, _silence(pause_s, rate), rest, tail])
        clips.append(
            Clip(
                f"{name}/paused{pause_s * 1000:.0f}",
                "paused",
                _telephone(paused, rate, rng).tobytes(),
                LEAD_S + (len(head) + len(rest)) / rate + pause_s,
            )
        )
    return clips


def _synth(voice: str, text: str, out: Path) -> tuple[np.ndarray, int]:
    if voice == "festival":
        text_file = out.with_suffix(".txt")
        text_file.write_text(text + "\n", encoding="utf-8")
        command = [
            "text2wave",
            "-eval",
            "(voice_msu_ru_nsh_clunits)",
            str(text_file),
            "-o",
            str(out),
        ]
    else:
        command = ["espeak-ng", "-v", "ru", "-s", "150", "-w", str(out), text]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    pcm = read_wav(out, rate=None)
    return pcm.to_numpy(), pcm.rate


def build_set(voices: list[str], workdir: Path, seed: int = 11) -> list[Clip]:
    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    for voice in (v for v in voices if v in ("festival", "espeak")):
        for index, marked in enumerate(SENTENCES):
            before, after = (part.strip() for part in marked.split("|"))
            samples, rate = _synth(voice, f"{before} {after}", workdir / f"{voice}{index}.wav")
            at = len(before) / (len(before) + len(after) + 1)
            clips += _clips_from(f"{voice}{index:02d}", samples, rate, at, rng)
    if "human" in voices:
        for name in _one_sentence_prompts():
            pcm = read_wav(HUMAN_DIR / name, rate=None)
            samples = pcm.to_numpy()
            # Split where the prompt's longest inner pause is (one sentence: it is mid-sentence).
            pauses = _inner_pauses(_trim(samples, pcm.rate), pcm.rate)
            where = None
            if pauses:
                longest = max(pauses, key=lambda run: run[1] - run[0])
                total = len(_trim(samples, pcm.rate)) / (pcm.rate // 50)
                centre = (longest[0] + longest[1]) / 2 / total
                where = centre if 0.2 <= centre <= 0.8 else None
            clips += _clips_from(f"human:{name}", samples, pcm.rate, where, rng)
    return clips


def _one_sentence_prompts() -> list[str]:
    if not HUMAN_DIR.is_dir():
        return []
    chosen = []
    for line in HUMAN_TSV.read_text(encoding="utf-8").splitlines():
        name, _, text = line.partition("\t")
        text = text.strip()
        inner = text[:-1]
        if (
            text.endswith((".", "?"))
            and not any(mark in inner for mark in ".?!…«")
            and len(text.split()) >= 4
            and (HUMAN_DIR / name).is_file()
        ):
            chosen.append(name)
    return chosen
