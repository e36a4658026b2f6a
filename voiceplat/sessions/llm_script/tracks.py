"""An llm_script robot's prerecorded tracks: `tracks.json` and the WAVs in `tracks/`, loaded once.

tracks.json (in the robot folder):

    {"fallback": "fallback",
     "tracks": [{"id": "hours", "file": "hours.wav", "text": "Мы работаем…",
                 "description": "opening hours, days off"}, …]}

`file` is inside `tracks/` (default `<id>.wav`); `text` is what the track says (the turn's text in the
call record and the dialog the LLM sees; `description` stands in for it when absent); `description`
tells the LLM when to pick it. Flags: `ends_call` (hang up once heard), `transfer` (a target: transfer
the call once heard), `uninterruptible` (no barge-in). `fallback` names the track played when the
LLM's choice is not understood; a track `greeting`, if present, is the greeting. Every WAV is read
and resampled to 8 kHz here, so a call only copies bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceplat.audio.pcm import Pcm
from voiceplat.audio.wav import WavError, read_wav
from voiceplat.config import RobotConfig
from voiceplat.config_errors import describe_errors, format_value
from voiceplat.errors import RobotError

TRACKS_FILE = "tracks.json"
TRACKS_DIR = "tracks"
GREETING_ID = "greeting"
MAX_ID_CHARS = 64


class TrackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    file: str | None = Field(None, description="WAV in tracks/; default <id>.wav")
    description: str = Field(min_length=1, description="what it says / when to play it")
    text: str | None = Field(None, min_length=1, description="what it says, word for word")
    ends_call: bool = False
    transfer: str | None = Field(None, min_length=1, description="extension or SIP URI")
    uninterruptible: bool = False


class TracksFile(BaseModel):
    """The file's outline; each track is validated on its own, so errors can suggest its keys."""

    model_config = ConfigDict(extra="forbid")

    fallback: str = "fallback"
    tracks: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Track:
    id: str
    description: str
    text: str | None
    audio: Pcm
    ends_call: bool = False
    transfer: str | None = None
    uninterruptible: bool = False

    @property
    def spoken_text(self) -> str:
        return self.text or self.description


@dataclass(frozen=True)
class TrackSet:
    tracks: dict[str, Track]
    fallback: Track

    @property
    def ids(self) -> list[str]:
        return list(self.tracks)

    @property
    def greeting(self) -> Track | None:
        return self.tracks.get(GREETING_ID)

    def system_prompt(self, prompt: str) -> str:
        """The robot's prompt, then the menu of tracks and how to answer."""
        menu = "\n".join(f"- {t.id}: {t.description}" for t in self.tracks.values())
        return (
            f"{prompt}\n\nTracks (id: when to play it):\n{menu}\n\n"
            "Reply with the id of the track that best answers the caller's last words, and "
            f"nothing else. Reply {self.fallback.id} only if none of the tracks fits."
        )


def load_tracks(robot_dir: Path, config: RobotConfig) -> TrackSet:
    """Reads tracks.json and every WAV; raises RobotError listing every problem found."""
    path = robot_dir / TRACKS_FILE
    fallback, specs = _read_spec(path)
    problems: list[str] = []
    tracks: dict[str, Track] = {}
    first_index: dict[str, int] = {}
    for index, item in enumerate(specs):
        where = f"{path}: tracks[{index}]"
        problems += _id_problems(where, item.id, first_index.get(item.id))
        first_index.setdefault(item.id, index)
        if item.ends_call and item.transfer:
            problems.append(
                f"{where}: ends_call and transfer are both set; a track either hangs up or "
                "transfers the call"
            )
        audio = _read_audio(where, robot_dir, item, problems)
        if audio is not None and item.id not in tracks:
            tracks[item.id] = Track(
                item.id,
                item.description,
                item.text,
                audio,
                item.ends_call,
                item.transfer,
                item.uninterruptible,
            )
    declared = [item.id for item in specs]
    if fallback not in declared:
        problems.append(
            f"{path}: fallback: {format_value(fallback)} is not a track id; known: "
            f"{', '.join(declared)} (the fallback is played when the LLM's choice is not understood)"
        )
    problems += _greeting_problems(robot_dir, config, GREETING_ID in declared)
    if problems:
        raise RobotError(problems)
    return TrackSet(tracks, tracks[fallback])


def _read_spec(path: Path) -> tuple[str, list[TrackSpec]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobotError(
            f"{path}: missing; an llm_script robot lists its tracks there "
            '({"fallback": "fallback", "tracks": [{"id": ..., "file": ..., "description": ...}]})'
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RobotError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RobotError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise RobotError(
            f'{path}: must hold a JSON object {{"fallback": ..., "tracks": [...]}}, '
            f"not {format_value(data)}"
        )
    try:
        outline = TracksFile.model_validate(data)
    except ValidationError as exc:
        lines = describe_errors(exc, model=TracksFile)
        raise RobotError([f"{path}: {line}" for line in lines]) from None
    specs: list[TrackSpec] = []
    lines = []
    for index, item in enumerate(outline.tracks):
        try:
            specs.append(TrackSpec.model_validate(item))
        except ValidationError as exc:
            lines += describe_errors(exc, prefix=("tracks", index), model=TrackSpec)
    if lines:
        raise RobotError([f"{path}: {line}" for line in lines])
    return outline.fallback, specs


def _id_problems(where: str, track_id: str, first: int | None) -> list[str]:
    if first is not None:
        return [
            f"{where}.id: {format_value(track_id)} is already the id of tracks[{first}]; "
            "ids must be unique"
        ]
    if not track_id or track_id != track_id.strip() or any(c.isspace() for c in track_id):
        return [
            f"{where}.id: {format_value(track_id)} is not allowed; must be one word without "
            'spaces, e.g. "hours"'
        ]
    if len(track_id) > MAX_ID_CHARS or not track_id.isprintable():
        return [
            f"{where}.id: {format_value(track_id)} is not allowed; must be at most "
            f"{MAX_ID_CHARS} printable characters"
        ]
    return []


def _read_audio(where: str, robot_dir: Path, item: TrackSpec, problems: list[str]) -> Pcm | None:
    folder = robot_dir / TRACKS_DIR
    name = item.file or f"{item.id}.wav"
    path = folder / name
    field = f"{where}.file" if item.file else f"{where}.id"
    shown = format_value(name)
    if not path.resolve().is_relative_to(folder.resolve()):
        problems.append(f"{field}: {shown} is not allowed; must be a file inside {folder}/")
        return None
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("*.wav")) if folder.is_dir() else []
        listing = f"WAV files there: {', '.join(present)}" if present else "there are none"
        default = "" if item.file else " (no file given: <id>.wav)"
        problems.append(f"{field}: {shown}{default} is not in {folder}/; {listing}")
        return None
    try:
        audio = read_wav(path)
    except WavError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        problems.append(f"{field}: {shown}: {reason}; tracks must be 16-bit PCM WAV files")
        return None
    if not audio.data:
        problems.append(f"{field}: {shown} holds no audio")
        return None
    return audio


def _greeting_problems(robot_dir: Path, config: RobotConfig, has_track: bool) -> list[str]:
    """A greeting track is the greeting: another greeting beside it would be silently ignored."""
    if not has_track:
        return []
    found = []
    config_path = robot_dir / "config.json"
    if config.greeting_wav is not None:
        found.append(f"{config_path}: greeting_wav: {format_value(config.greeting_wav)}")
    elif (robot_dir / "greeting.wav").exists():
        found.append(f"{robot_dir / 'greeting.wav'}")
    if config.greeting_text:
        found.append(f"{config_path}: greeting_text")
    return [
        f"{where} is not allowed beside the track {GREETING_ID!r} in {robot_dir / TRACKS_FILE}, "
        "which is the greeting; keep one of them"
        for where in found
    ]
