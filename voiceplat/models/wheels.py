"""Pinned wheels read without installing them: downloaded with pip, checked by sha256, opened as zips.

A package whose catalog entry carries a `Wheel` (pipecat-ai, for the Smart Turn model it bundles)
is never installed: its code and dependencies are not wanted, only a data file inside it.
`fetch_wheel` puts the wheel in `<models dir>/.wheels/` with `pip download --no-deps` (PyPI is the
one place these machines reach), reusing a copy already there when its sha256 is the pinned one,
so a machine without PyPI can be given the file by hand. `WheelMember` reads one file out of it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from voiceplat.models.catalog import Package, Wheel

WHEELS_DIR = ".wheels"
DOWNLOAD_TIMEOUT_S = 1800.0
"""Only a hung download reaches this: the wheels are megabytes, pip retries on its own."""


class WheelError(RuntimeError):
    """The wheel cannot be had or is not the pinned one; the message says what to do."""


@dataclass(frozen=True, slots=True)
class WheelMember:
    """One file inside a wheel, readable like a file on disk."""

    wheel: Path
    member: str

    def size(self) -> int:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.getinfo(self.member).file_size

    def open(self) -> _ClosingMember:
        archive = zipfile.ZipFile(self.wheel)
        try:
            return _ClosingMember(archive, archive.open(self.member))
        except BaseException:
            archive.close()
            raise


class _ClosingMember:
    """A zip member's stream that also closes its archive."""

    def __init__(self, archive: zipfile.ZipFile, stream: IO[bytes]) -> None:
        self._archive = archive
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        self._stream.close()
        self._archive.close()

    def __enter__(self) -> _ClosingMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wheel_member(wheel: Path, package: Package, path: str) -> WheelMember:
    """The file `path` (relative to the package's top-level directory) inside `wheel`."""
    member = f"{package.module}/{path}"
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise WheelError(f"{wheel} ({package.requirement}) lacks {member}")
    return WheelMember(wheel, member)


def fetch_wheel(package: Package, directory: Path, progress: bool) -> Path:
    """The pinned wheel of `package` in `directory`: reused when its hash matches, else downloaded."""
    pin = _pin(package)
    target = directory / pin.filename
    if target.is_file() and _sha256(target) == pin.sha256:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # a damaged or foreign copy would make pip keep it
    _pip_download(package, directory, progress)
    if not target.is_file():
        found = sorted(p.name for p in directory.glob("*.whl"))
        raise WheelError(
            f"pip downloaded {package.requirement} but {target} is not there "
            f"(found: {', '.join(found) or 'nothing'}); the pin in voiceplat/models/catalog.py "
            "names another file"
        )
    actual = _sha256(target)
    if actual != pin.sha256:
        target.unlink()
        raise WheelError(
            f"{pin.filename} downloaded for {package.requirement} has sha256 {actual}, expected "
            f"{pin.sha256}: not the pinned build (a mirror or proxy changed it?)"
        )
    return target


def _pin(package: Package) -> Wheel:
    if package.wheel is None:
        raise ValueError(f"{package.requirement} is an installed package, not a pinned wheel")
    return package.wheel


def _pip_download(package: Package, directory: Path, progress: bool) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(directory),
        package.requirement,
    ]
    if not progress:
        command.insert(4, "--quiet")
    print(f"==> pip download {package.requirement} (one file, nothing installed)", file=sys.stderr)
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    try:
        result = subprocess.run(
            command,
            # With progress, pip's own bar goes to the terminal; otherwise keep its words for
            # the error message.
            stdout=None if progress else subprocess.PIPE,
            stderr=None if progress else subprocess.PIPE,
            text=True,
            env=env,
            timeout=DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise WheelError(
            f"pip download {package.requirement} hung for {exc.timeout:.0f} s"
        ) from exc
    if result.returncode != 0:
        tail = "\n".join(((result.stderr or "") + (result.stdout or "")).strip().splitlines()[-5:])
        raise WheelError(
            f"pip download {package.requirement} failed (exit {result.returncode})"
            + (f": {tail}" if tail else "")
            + f". Without PyPI, copy {_pin(package).filename} into {directory} and run again"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as chunks:
        while chunk := chunks.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()
