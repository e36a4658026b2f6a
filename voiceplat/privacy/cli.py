"""`voiceplat forget CALLER [ROBOT_DIR ...]`: one caller's calls deleted everywhere.

Everywhere is: each robot folder's JSON records and recordings, and the stores each folder's env
names (POSTGRES_DSN, MONGO_URI, REDIS_URL; each store once however many robots share it). With
no folder given, every robot under ./robots is searched and the caller's calls are deleted from
the stores whatever robot they were made to; naming folders narrows the stores to those robots.
The caller is matched exactly as the records hold it (the `caller` field: `+79161234567`).
It prints one line per place; a place it could not clean (a store that is down, or a spool that
still holds items of the caller's calls a store has not written) is one of those lines, and the
command then exits 1, so a script can try again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from voiceplat.errors import RobotError
from voiceplat.privacy.stores import (
    Deleted,
    Selection,
    delete_json_records,
    delete_mongo,
    delete_postgres,
    delete_redis,
    spooled_calls,
)

STORE_DELETERS = {
    "POSTGRES_DSN": delete_postgres,
    "MONGO_URI": delete_mongo,
    "REDIS_URL": delete_redis,
}
_SUFFIXES = (".wav", ".flac")
RECORDINGS = "recording file(s)"


@dataclass(frozen=True)
class RobotFolder:
    name: str
    logs_dir: Path
    recordings_dir: Path
    spool_dir: Path
    env: dict[str, str]


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("caller", help="the caller as records hold it, e.g. +79161234567")
    parser.add_argument(
        "robots",
        nargs="*",
        metavar="ROBOT_DIR",
        help="robot folders (default: every folder under ./robots; the stores their .env names)",
    )


def run_forget_command(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.robots] or default_robot_dirs(Path("robots"))
    folders, problems = read_folders(dirs)
    for line in problems:
        print(line, file=sys.stderr)
    if not folders and not problems:
        print("no robot folder given and none under ./robots", file=sys.stderr)
        return 1
    robots = [f.name for f in folders] if args.robots else None
    places = asyncio.run(forget(args.caller, folders, robots))
    for place in places:
        print(place.line())
    total = len(
        {
            call
            for place in places
            if place.unit != RECORDINGS and not place.place.startswith("spool ")
            for call in place.calls
        }
    )
    print(f"forgot {total} call(s) of {args.caller}")
    return 1 if problems or any(place.error for place in places) else 0


def default_robot_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / "config.json").is_file())


def read_folders(dirs: list[Path]) -> tuple[list[RobotFolder], list[str]]:
    """Each folder's config and env (not its providers: forgetting needs no model)."""
    from voiceplat.config import load_config
    from voiceplat.config_sources import read_env_files
    from voiceplat.recording.settings import recordings_dir

    folders: list[RobotFolder] = []
    problems: list[str] = []
    for directory in dirs:
        if not directory.is_dir():
            problems.append(f"{directory}: no such robot folder")
            continue
        env = read_env_files(directory)
        try:
            config = load_config(directory, env)
        except RobotError as exc:
            problems += exc.problems
            continue
        folders.append(
            RobotFolder(
                directory.absolute().name,
                directory / config.logs_dir,
                recordings_dir(directory, config.recording),
                directory / "spool",
                env,
            )
        )
    return folders, problems


async def forget(
    caller: str, folders: list[RobotFolder], robots: list[str] | None
) -> list[Deleted]:
    """Deletes the caller's calls from every folder and store; what each place deleted.

    `robots`: only these robots' calls in the stores (None: every robot's)."""
    places: list[Deleted] = []
    selection = Selection(caller=caller)
    for folder in folders:
        places.append(await asyncio.to_thread(delete_json_records, folder.logs_dir, selection))
    stores: dict[tuple[str, str], None] = {}
    for folder in folders:
        for variable in STORE_DELETERS:
            if url := folder.env.get(variable):
                stores[(variable, url)] = None
    work = []
    for variable, url in stores:
        narrowed: list[str | None] = list(robots) if robots else [None]
        for robot in narrowed:
            work.append(STORE_DELETERS[variable](url, Selection(caller=caller, robot=robot)))
    places += merge_by_place(await asyncio.gather(*work))
    places += await asyncio.to_thread(delete_recordings, folders, places)
    for folder in folders:  # what a store has not yet got would bring the calls back
        places += await asyncio.to_thread(spooled_calls, folder.spool_dir, caller)
    return places


def merge_by_place(results: list[Deleted]) -> list[Deleted]:
    """One line per store even when it was cleaned robot by robot."""
    merged: dict[str, Deleted] = {}
    for result in results:
        place = merged.setdefault(result.place, Deleted(result.place))
        place.calls += result.calls
        place.recordings += result.recordings
        place.details = result.details or place.details
        place.error = result.error or place.error
    return list(merged.values())


def delete_recordings(folders: list[RobotFolder], places: list[Deleted]) -> list[Deleted]:
    """The recordings of the deleted calls: those the records named, and those named after a
    deleted call id in a robot's recordings folder. Only files inside a robot's recordings
    folder are touched, whatever path a record holds."""
    from voiceplat.storage.jsonfile import safe_call_id

    named = {Path(path) for place in places for path in place.recordings}
    ids = {safe_call_id(call) for place in places for call in place.calls}
    result: list[Deleted] = []
    for folder in folders:
        deleted = Deleted(f"recordings {folder.recordings_dir}", unit=RECORDINGS)
        root = folder.recordings_dir.resolve()
        targets = {p for p in named if p.suffix in _SUFFIXES and p.resolve().is_relative_to(root)}
        if root.is_dir():
            for day in root.iterdir():
                for suffix in _SUFFIXES:
                    targets |= {day / f"{call}{suffix}" for call in ids}
        for path in sorted(targets):
            try:
                if path.is_file():
                    path.unlink()
                    deleted.calls.append(path.stem)
            except OSError as exc:
                deleted.error = f"{path}: {type(exc).__name__}: {exc}"
        result.append(deleted)
    return result
