"""The `festival --server` process a FestivalTTS runs: who can see its password, who can reach it.

Festival evaluates any Scheme a client sends, `system` included, so the server must be reachable
only by its provider: the password must not be readable in /proc, a client without it must be
turned away, and no socket of the server may accept connections from other hosts.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voiceplat.providers.tts.festival import FestivalTTS

pytestmark = pytest.mark.e2e

LISTEN = "0A"  # TCP state of a listening socket in /proc/net/tcp
LOOPBACK = {
    "0100007F",
    "00000000000000000000000001000000",
}  # 127.0.0.1 and ::1, as /proc shows them


async def started(**settings: Any) -> AsyncIterator[FestivalTTS]:
    tts = FestivalTTS(FestivalTTS.Settings(provider="festival", **settings), {})
    if tts.problems():
        pytest.skip("; ".join(tts.problems()))
    await tts.start()
    try:
        yield tts
    finally:
        await tts.aclose()


@pytest.fixture
async def festival() -> AsyncIterator[FestivalTTS]:
    async for tts in started():
        yield tts


def can_make_network_namespace() -> bool:
    """Whether this kernel and sandbox let an ordinary process make its own network namespace."""
    from voiceplat.providers.tts import festival_sandbox

    return festival_sandbox.probe() is None


def command_lines() -> dict[int, bytes]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # exited meanwhile
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening(pid: int) -> list[tuple[str, int]]:
    """(address as /proc writes it, port) of every TCP socket `pid` listens on, in its namespace."""
    inodes = socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == LISTEN and fields[9] in inodes:
                found.append((address, int(port, 16)))
    return found


def interfaces(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines}


def network_namespace_of(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def ports_listening_here() -> set[int]:
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


async def test_the_password_is_in_no_command_line(festival: FestivalTTS) -> None:
    password = festival._server._password.encode()
    leaks = {
        pid: line
        for pid, line in command_lines().items()
        if password in line or b"server_passwd" in line
    }
    assert not leaks, f"the festival password is visible in /proc/<pid>/cmdline of {leaks}"


NO_NAMESPACES = (
    "this kernel or container allows no user namespaces: the server then listens on all "
    "interfaces, as documented (network_namespace: auto); a property of the host, not of the setup"
)


@pytest.mark.ci_may_skip(NO_NAMESPACES)
async def test_the_server_accepts_no_connection_from_another_host(festival: FestivalTTS) -> None:
    if not can_make_network_namespace():
        pytest.skip(NO_NAMESPACES)
    pid = festival.server_pid
    assert pid is not None
    sockets = listening(pid)
    assert sockets, "the festival server listens on no TCP socket"
    own_network = network_namespace_of(pid) != network_namespace_of("self")
    for address, port in sockets:
        if address in LOOPBACK:
            continue
        # Listening on every interface is harmless only in a namespace with nothing but loopback.
        assert own_network and interfaces(pid) == {"lo"}, (
            f"festival listens on {address}:{port} in a network with {interfaces(pid)}"
        )
        assert port not in ports_listening_here()


@pytest.mark.ci_may_skip(NO_NAMESPACES)
async def test_the_server_is_isolated_where_the_kernel_allows_it(festival: FestivalTTS) -> None:
    if not can_make_network_namespace():
        pytest.skip(NO_NAMESPACES)
    assert festival._server.isolated
    pid = festival.server_pid
    assert pid is not None
    assert network_namespace_of(pid) != network_namespace_of("self")


@pytest.mark.parametrize("network_namespace", ["auto", "off"])
async def test_a_client_without_the_password_is_turned_away(network_namespace: str) -> None:
    async for tts in started(network_namespace=network_namespace):
        server = tts._server
        for attempt in (b"(getpid)\n", b"x" * len(server._password) + b"\n(getpid)\n"):
            reader, writer = await server.raw_connection()
            writer.write(attempt)
            try:
                async with asyncio.timeout(10):  # only a hang reaches it
                    answer = await reader.read()
            except ConnectionResetError:  # closed with our bytes unread
                answer = b""
            writer.close()
            assert answer == b"", f"festival answered {answer[:40]!r} to a client without password"
        child = await server.open()  # with the password it answers
        await child.close()
        if network_namespace == "off":
            assert not server.isolated
            assert tts.server_pid is not None
            assert b"server_passwd" not in command_lines()[tts.server_pid]


async def test_twelve_connections_at_once_are_served_by_one_server(festival: FestivalTTS) -> None:
    pid = festival.server_pid
    children = [await festival._server.open() for _ in range(12)]
    try:
        assert festival.server_pid == pid, "the server was restarted: it refused a connection"
    finally:
        for child in children:
            await child.close()


async def test_a_restart_does_not_wait_for_children_still_serving(festival: FestivalTTS) -> None:
    busy = await festival._server.open()  # another call's sentence, still in progress
    old_pid = festival.server_pid
    assert old_pid is not None
    try:
        os.kill(old_pid, signal.SIGKILL)
        async with asyncio.timeout(60):  # only a hang reaches it
            child = await festival._server.open()
        await child.close()
        assert festival.server_pid not in (None, old_pid)
    finally:
        await busy.close()


@pytest.mark.parametrize("network_namespace", ["auto", "required"])
async def test_without_namespaces_auto_shares_the_network_and_required_refuses(
    network_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voiceplat.providers.base import ProviderError
    from voiceplat.providers.tts import festival_server

    launch = festival_server._Sandbox.launch

    async def no_namespaces(port: int, isolated: bool, setup: bytes) -> festival_server._Sandbox:
        if isolated:  # what the sandbox answers where the kernel refuses user namespaces
            raise festival_server._NoNamespace("cannot make a network namespace: EPERM")
        return await launch(port, isolated, setup)

    monkeypatch.setattr(festival_server._Sandbox, "launch", no_namespaces)
    if network_namespace == "required":
        with pytest.raises(ProviderError, match="reachable from other hosts"):
            async for _ in started(network_namespace=network_namespace):
                pass
        return
    async for tts in started(network_namespace=network_namespace):
        assert not tts._server.isolated
        assert tts.server_pid is not None
        assert network_namespace_of(tts.server_pid) == network_namespace_of("self")
