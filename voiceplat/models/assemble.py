"""Assembles models from installed packages into the model cache, verifies them and reuses them.

A model lives in its own directory, `<models dir>/<name>/`, holding the files of its spec. Building
it copies (and for split models, concatenates) the parts out of site-packages once, hashing while
writing; a file is moved into place only when its sha256 matches the pinned one. A stamp
(`.voiceplat-stamp.json`: size, mtime and sha256 per file) lets later starts trust the files
without re-hashing a gigabyte: a file whose size and mtime still match its stamp is taken as
verified. `verify_model` re-hashes for real.

The models dir is `$VOICEPLAT_MODELS_DIR`, else the user's cache dir + `voiceplat/models`
(`~/.cache/voiceplat/models` on Linux). Once a model is assembled, its packages may be uninstalled.
A package pinned as a wheel (catalog `Wheel`) is not installed at all: preparing the model downloads
the wheel into `<models dir>/.wheels/` and reads the parts out of it (voiceplat/models/wheels.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from voiceplat.models.catalog import CATALOG, ModelFile, ModelKind, ModelSpec, Package, Part
from voiceplat.models.wheels import WHEELS_DIR, WheelError, WheelMember, fetch_wheel, wheel_member

MODELS_DIR_ENV = "VOICEPLAT_MODELS_DIR"
STAMP_NAME = ".voiceplat-stamp.json"
_CHUNK = 4 << 20
_INSTALL_ALL_HINT = "scripts/setup.sh (pip install -e .[local]) installs the model packages"


class ModelError(RuntimeError):
    """A model cannot be made ready; the message says what to install or what is damaged."""


ModelState = Literal["ready", "not-prepared", "missing-packages"]


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str
    kind: ModelKind
    description: str
    state: ModelState
    """ready: assembled and stamped; not-prepared: packages installed, not assembled yet;
    missing-packages: not assembled and some packages are absent (see `problems`)."""
    path: Path
    size: int
    problems: tuple[str, ...] = ()


def models_dir() -> Path:
    """Where assembled models live: $VOICEPLAT_MODELS_DIR or the user cache dir."""
    configured = os.environ.get(MODELS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return _user_cache_dir() / "voiceplat" / "models"


def _user_cache_dir() -> Path:
    # The same places platformdirs picks, without the dependency.
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if sys.platform == "darwin":
        return home / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else home / ".cache"


def get_model_spec(name: str) -> ModelSpec:
    spec = CATALOG.get(name)
    if spec is None:
        known = ", ".join(sorted(CATALOG))
        raise ModelError(f'unknown model "{name}"; known models: {known}')
    return spec


def model_dir(name: str) -> Path:
    return models_dir() / get_model_spec(name).name


def ensure_model(name: str, progress: bool = True) -> Path:
    """Makes model `name` ready and returns its DIRECTORY (all files of the spec are in it).

    Assembles missing or damaged files from the installed packages (with a tqdm progress bar on
    stderr when `progress`), then trusts the stamp on later calls. Raises ModelError naming the
    packages to install, or the expected and actual sha256 when a package is damaged.
    Blocking (up to a minute for a 1 GB model the first time): call it off the event loop.
    """
    spec = get_model_spec(name)
    directory = models_dir() / spec.name
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        stamp = _read_stamp(directory)
        stale = [file for file in spec.files if not _trusted(directory, file, stamp)]
        # A cache copied without its mtimes: re-hash files of the right size once, keep the good.
        stale = [file for file in stale if not _rehash_if_plausible(directory, file, stamp)]
        if stale:
            sources = _locate_parts(spec, stale, progress)
            _assemble(spec, directory, stale, sources, stamp, progress)
        _write_stamp(directory, spec, stamp)
    return directory


def ensure_model_file(name: str, progress: bool = True) -> Path:
    """Like `ensure_model`, but returns the path of the model's primary file (GGUF, ONNX voice)."""
    return ensure_model(name, progress) / get_model_spec(name).primary


def verify_model(name: str, progress: bool = False) -> str:
    """Re-hashes every file of an assembled model; returns the primary file's sha256.

    Raises ModelError when the model is not assembled or a file does not match its pinned hash.
    """
    spec = get_model_spec(name)
    directory = models_dir() / spec.name
    missing = [file.name for file in spec.files if not (directory / file.name).is_file()]
    if missing:
        raise ModelError(
            f'model "{name}" is not prepared ({directory / missing[0]} is missing); '
            f"run: voiceplat models prepare {name}"
        )
    with _locked(directory), _progress(spec.size, f"verifying {name}", progress) as bar:
        stamp = _read_stamp(directory)
        for file in spec.files:
            path = directory / file.name
            actual = _hash_file(path, bar)
            if actual != file.sha256:
                raise ModelError(
                    f'model "{name}": {path} has sha256 {actual}, expected {file.sha256}; '
                    f"delete it and run: voiceplat models prepare {name}"
                )
            stamp[file.name] = _stamp_entry(path, actual)
        _write_stamp(directory, spec, stamp)
    return next(stamp[f.name]["sha256"] for f in spec.files if f.name == spec.primary)


def model_status(name: str) -> ModelStatus:
    """Cheap status for `list` and `check`: reads the stamp and package metadata, hashes nothing."""
    spec = get_model_spec(name)
    directory = models_dir() / spec.name
    stamp = _read_stamp(directory)
    ready = all(_trusted(directory, file, stamp) for file in spec.files)
    problems = () if ready else tuple(filter(None, map(_package_problem, spec.packages)))
    state: ModelState = "ready" if ready else "missing-packages" if problems else "not-prepared"
    return ModelStatus(
        spec.name, spec.kind, spec.description, state, directory, spec.size, problems
    )


def list_models() -> list[ModelStatus]:
    return [model_status(name) for name in CATALOG]


def packages_problem(name: str, label: str) -> str | None:
    """For a provider's `problems()`: which packages of catalog model `name` are missing, if any."""
    status = model_status(name)
    if status.state != "missing-packages":
        return None
    missing = "; ".join(status.problems)
    return f"model {label!r}: {missing} (install: {install_command(CATALOG[name].packages)})"


def install_command(packages: list[Package] | tuple[Package, ...], force: bool = False) -> str:
    """The pip command line that installs `packages` into this interpreter."""
    flag = " --force-reinstall" if force else ""
    names = " ".join(package.requirement for package in packages)
    return f"{sys.executable} -m pip install{flag} {names}"


# --- finding the parts --------------------------------------------------------------------------


def _package_problem(package: Package) -> str | None:
    """Why `package` cannot supply parts (not installed, wrong version), or None."""
    if package.wheel is not None:
        return None  # downloaded when the model is prepared, never installed
    try:
        version = importlib.metadata.version(package.name)
    except importlib.metadata.PackageNotFoundError:
        return f"{package.requirement} is not installed"
    if version != package.version:
        return f"{package.name} {version} is installed, but {package.requirement} is needed"
    return None


def _part_path(part: Part) -> Path:
    # Located through the distribution's metadata, so the package's code is never imported.
    distribution = importlib.metadata.distribution(part.package.name)
    return Path(str(distribution.locate_file(f"{part.package.module}/{part.path}")))


Source = Path | WheelMember
"""Where a part's bytes are: a file of an installed package, or a member of a pinned wheel."""


def _locate_parts(
    spec: ModelSpec, files: list[ModelFile], progress: bool = False
) -> dict[str, list[Source]]:
    """Maps each file name to its parts' sources; raises one ModelError listing every package
    issue. Pinned wheels are downloaded here (the only step that needs the network)."""
    needed = {part.package.name: part.package for file in files for part in file.parts}
    unusable = {
        name: problem
        for name, package in needed.items()
        if (problem := _package_problem(package)) is not None
    }
    if unusable:
        packages = [needed[name] for name in unusable]
        raise ModelError(
            f'model "{spec.name}" is not prepared and needs packages: '
            + "; ".join(unusable.values())
            + f". Install: {install_command(packages)} ({_INSTALL_ALL_HINT})"
        )
    wheels: dict[str, Path] = {}
    for package in needed.values():
        if package.wheel is not None:
            try:
                wheels[package.name] = fetch_wheel(package, models_dir() / WHEELS_DIR, progress)
            except WheelError as exc:
                raise ModelError(f'model "{spec.name}" is not prepared: {exc}') from exc
    sources: dict[str, list[Source]] = {}
    for file in files:
        sources[file.name] = []
        for part in file.parts:
            if part.package.name in wheels:
                try:
                    member = wheel_member(wheels[part.package.name], part.package, part.path)
                except WheelError as exc:
                    raise ModelError(f'model "{spec.name}": {exc}') from exc
                sources[file.name].append(member)
                continue
            path = _part_path(part)
            if not path.is_file():
                raise ModelError(
                    f'model "{spec.name}": package {part.package.requirement} is installed but '
                    f"lacks {part.package.module}/{part.path}; reinstall it: "
                    f"{install_command([part.package], force=True)}"
                )
            sources[file.name].append(path)
    return sources


# --- assembling -------------------------------------------------------------------------------------


def _assemble(
    spec: ModelSpec,
    directory: Path,
    files: list[ModelFile],
    sources: dict[str, list[Source]],
    stamp: dict[str, dict],
    progress: bool,
) -> None:
    total = sum(_source_size(source) for file in files for source in sources[file.name])
    with _progress(total, f"assembling {spec.name}", progress) as bar:
        for file in files:
            target = directory / file.name
            partial = directory / f".{file.name}.partial"
            digest = hashlib.sha256()
            with partial.open("wb") as out:
                for source in sources[file.name]:
                    with _open_source(source) as chunks:
                        while chunk := chunks.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
            actual = digest.hexdigest()
            if actual != file.sha256:
                size = partial.stat().st_size
                partial.unlink()
                packages = tuple({part.package.name: part.package for part in file.parts}.values())
                if any(package.wheel is not None for package in packages):
                    raise ModelError(
                        f'model "{spec.name}": {file.name} read from the pinned wheel has sha256 '
                        f"{actual}, expected {file.sha256}; the catalog pins disagree "
                        "(voiceplat/models/catalog.py)"
                    )
                raise ModelError(
                    f'model "{spec.name}": {file.name} assembled from '
                    + " + ".join(part.package.requirement for part in file.parts)
                    + f" has sha256 {actual} ({size} bytes), expected {file.sha256} "
                    f"({file.size} bytes); the packages are damaged or not the pinned builds. "
                    f"Reinstall them: {install_command(packages, force=True)}"
                )
            os.replace(partial, target)
            stamp[file.name] = _stamp_entry(target, actual)


def _source_size(source: Source) -> int:
    return source.stat().st_size if isinstance(source, Path) else source.size()


def _open_source(source: Source) -> Any:
    return source.open("rb") if isinstance(source, Path) else source.open()


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not enabled,
        file=sys.stderr,
    )


def _hash_file(path: Path, bar: Any = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as chunks:
        while chunk := chunks.read(_CHUNK):
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return digest.hexdigest()


# --- stamps and locking ---------------------------------------------------------------------------


def _stamp_entry(path: Path, sha256: str) -> dict:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha256}


def _trusted(directory: Path, file: ModelFile, stamp: dict[str, dict]) -> bool:
    """True when the file is as it was when last hashed, and that hash is the pinned one."""
    entry = stamp.get(file.name)
    if not entry or entry.get("sha256") != file.sha256:
        return False
    try:
        info = (directory / file.name).stat()
    except FileNotFoundError:
        return False
    return info.st_size == entry.get("size") and info.st_mtime_ns == entry.get("mtime_ns")


def _rehash_if_plausible(directory: Path, file: ModelFile, stamp: dict[str, dict]) -> bool:
    path = directory / file.name
    if not path.is_file() or path.stat().st_size != file.size:
        return False
    actual = _hash_file(path)
    if actual != file.sha256:
        return False
    stamp[file.name] = _stamp_entry(path, actual)
    return True


def _read_stamp(directory: Path) -> dict[str, dict]:
    try:
        data = json.loads((directory / STAMP_NAME).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return (
        {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}
    )


def _write_stamp(directory: Path, spec: ModelSpec, stamp: dict[str, dict]) -> None:
    names = {file.name for file in spec.files}
    data = {"model": spec.name, "files": {k: v for k, v in stamp.items() if k in names}}
    partial = directory / f".{STAMP_NAME}.partial"
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(partial, directory / STAMP_NAME)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialises assembly of one model across threads and processes (several robots starting)."""
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
