"""Real PostgreSQL, Redis and MongoDB-protocol servers for the tests, started on temporary
folders and free ports on 127.0.0.1, and stopped at the end of the session.

- PostgreSQL 15 from Debian (`postgresql`): initdb + pg_ctl. initdb refuses to run as root, so
  as root the cluster belongs to the `postgres` user (runuser).
- Redis from Debian (`redis-server`), with an append-only file so a SIGKILLed server comes back
  with what it had acknowledged (as a production Redis that must not lose live calls would).
- SecantusDB (`secantusd-py`, PyPI `secantusdb`, GPL-2.0: a test-only dependency), a MongoDB
  wire-protocol server, with sync-on-commit for the same reason.

Each server can be SIGKILLed (`kill`) and restarted on the same port and data (`start`), for the
"store dies in the middle of calls" tests. `scripts/setup.sh test` installs all three.

Tests get a fresh database per test from the `stores` fixture: its `env` holds POSTGRES_DSN,
MONGO_URI and REDIS_URL, ready for a robot's `.env`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECANTUS = Path(sys.executable).parent / "secantusd-py"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, process_alive: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if not process_alive():
                break
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start on port {port}:\n{tail}")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and its children at once: a crash, not a shutdown."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    processes = [parent, *parent.children(recursive=True)]
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=10)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class PostgresServer:
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT_S)),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        _wait_port(self.port, lambda: self.pid() is not None, "postgres", self.log)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            _kill_tree(pid)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
                "-d",
                self.dsn(database),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()


@dataclass
class RedisServer:
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def pidfile(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--daemonize",
                "yes",
                "--dir",
                str(self.root),
                "--pidfile",
                str(self.pidfile),
                "--logfile",
                str(self.log),
            ],
            check=True,
            capture_output=True,
        )
        _wait_port(self.port, lambda: True, "redis", self.log)

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        pid = self.pid()
        if pid is not None:
            _kill_tree(pid)

    stop = kill


@dataclass
class MongoServer:
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.root / "secantus.log"

    def uri(self, database: str = "voiceplat") -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}?directConnection=true"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(SECANTUS),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--storage-path",
                    str(self.root / "data"),
                    "--sync-on-commit",
                    "--log-level",
                    "WARNING",
                    "--standalone",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = self.process
        _wait_port(self.port, lambda: process.poll() is None, "secantusd-py", self.log)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _kill_tree(self.process.pid)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class StorageServers:
    postgres: PostgresServer
    redis: RedisServer
    mongo: MongoServer


def missing_servers() -> list[str]:
    missing = []
    if not (PG_BIN / "initdb").exists():
        missing.append("postgresql (apt)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server (apt)")
    if not SECANTUS.exists():
        missing.append("secantusdb (pip, the test extra)")
    return missing


def start_servers(root: Path) -> StorageServers:
    servers = StorageServers(
        PostgresServer(root / "postgres"), RedisServer(root / "redis"), MongoServer(root / "mongo")
    )
    servers.postgres.init()
    servers.redis.start()
    servers.mongo.start()
    servers.postgres.start()
    return servers


def stop_servers(servers: StorageServers) -> None:
    for server in (servers.postgres, servers.redis, servers.mongo):
        try:
            server.stop()
        except Exception as exc:  # stopping must not hide a test failure
            print(f"stopping {type(server).__name__}: {exc}", file=sys.stderr)


@pytest.fixture(scope="session")
def storage_servers() -> Iterator[StorageServers]:
    missing = missing_servers()
    if missing:
        pytest.skip(
            f"storage servers not installed: {', '.join(missing)}; run scripts/setup.sh test"
        )
    # Not pytest's tmp_path: its folders are private to root, and PostgreSQL runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="voiceplat-stores-"))
    os.chmod(root, 0o755)
    servers = start_servers(root)
    try:
        yield servers
    finally:
        stop_servers(servers)
        shutil.rmtree(root, ignore_errors=True)


_numbers = itertools.count(1)


@dataclass
class StoreEnv:
    """One test's own databases on the shared servers."""

    servers: StorageServers
    database: str
    redis_db: int

    @property
    def env(self) -> dict[str, str]:
        return {
            "POSTGRES_DSN": self.servers.postgres.dsn(self.database),
            "MONGO_URI": self.servers.mongo.uri(self.database),
            "REDIS_URL": self.servers.redis.url(self.redis_db),
        }

    def env_file(self) -> str:
        return "".join(f"{key}={value}\n" for key, value in self.env.items())


@pytest.fixture
def stores(storage_servers: StorageServers) -> StoreEnv:
    """A fresh PostgreSQL database, MongoDB database and (flushed) Redis db number."""
    number = next(_numbers)
    database = f"voiceplat_test_{os.getpid()}_{number}"
    storage_servers.postgres.psql(f"CREATE DATABASE {database}")
    redis_db = number % 16
    subprocess.run(
        ["redis-cli", "-p", str(storage_servers.redis.port), "-n", str(redis_db), "FLUSHDB"],
        check=True,
        capture_output=True,
    )
    return StoreEnv(storage_servers, database, redis_db)
