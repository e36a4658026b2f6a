"""Runs `festival --server` in a network of its own and hands its provider connections to it.

Festival binds its server socket to every interface (`INADDR_ANY` is hard-coded in its
server.cc), and a connected client may evaluate any Scheme, `system` included. So the server runs
in a new network namespace whose only interface is loopback: no other host and no other local
process can reach it. Only this process, inside that namespace, can connect; it passes each
connected socket to the provider over a Unix socket (SCM_RIGHTS), so the audio then flows straight
between festival and the provider.

Run by `festival_server.py` as a separate process (`python -I -S festival_sandbox.py ...`, the
standard library only), because a process enters a namespace as a whole and the robot's process
must stay where it is:

    festival_sandbox.py PARENT_PID CONTROL_FD PORT isolated|shared -- festival --server ...

CONTROL_FD is a SOCK_SEQPACKET Unix socket to the provider. This process first sends
`started <festival pid>` (or `no-namespace <why>` or `error <why>`, and exits), then answers every message with `ok` and a
connected socket, or `error <why>`. It ends, killing festival, when the provider closes the control
socket, when festival exits, or (by parent-death signal) when the provider's process dies. In
`shared` mode no namespace is made; festival then listens on every interface of the host and relies
on its access list and password.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ_SIZE = 40
CONNECT_TIMEOUT_S = 5.0

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def die_with_parent() -> None:
    """SIGKILL for this process when the process that started it dies."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL))


def _write(path: str, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def enter_own_network() -> None:
    """Moves this process into a new network namespace with only loopback, which is brought up.

    Unprivileged processes need a user namespace for that; this one maps the caller's own uid and
    gid, so files keep their owner. Real root where user namespaces are off gets the network one.
    """
    uid, gid = os.geteuid(), os.getegid()
    try:
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNET))
    except OSError as first:
        try:
            _check(_libc.unshare(CLONE_NEWNET))
        except OSError:
            raise first from None
    else:
        _write("/proc/self/setgroups", "deny")  # required before an unprivileged gid_map
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH", b"lo", 0).ljust(IFREQ_SIZE, b"\0")
        flags = struct.unpack_from("16sH", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(
            probe, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP).ljust(IFREQ_SIZE, b"\0")
        )


def probe() -> str | None:
    """None when a network namespace can be made here, else why not (tests and diagnostics)."""
    # A child tries, so the caller stays where it is (and a threaded caller need not fork).
    result = subprocess.run(
        [sys.executable, "-I", "-S", __file__, "probe"], capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else result.stderr.strip() or "no network namespace"


def serve(control: socket.socket, festival: subprocess.Popen[bytes], port: int) -> None:
    """Answers connection requests until the provider or festival goes away."""
    watched: list[int | socket.socket] = [control]
    with contextlib.suppress(OSError, AttributeError):
        watched.append(os.pidfd_open(festival.pid))  # readable once festival exits
    while True:
        ready, _, _ = select.select(watched, [], [])
        if control not in ready:
            return  # festival exited
        if not control.recv(64):
            return  # the provider closed the control socket
        try:
            with socket.create_connection(("127.0.0.1", port), CONNECT_TIMEOUT_S) as connection:
                socket.send_fds(control, [b"ok"], [connection.fileno()])
        except OSError as exc:
            control.send(f"error {exc}".encode())


def main(argv: list[str]) -> int:
    if argv[1:] == ["probe"]:
        try:
            enter_own_network()
        except OSError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    parent_pid, control_fd, port, mode = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    command = argv[argv.index("--") + 1 :]
    die_with_parent()
    if os.getppid() != parent_pid:
        return 1  # the provider died before the parent-death signal was set
    control = socket.socket(fileno=control_fd)
    if mode == "isolated":
        try:
            enter_own_network()
        except OSError as exc:
            control.send(f"no-namespace cannot make a network namespace: {exc}".encode())
            return 1
    try:
        # stdin (festival's setup script, password included), stdout and stderr are inherited.
        festival = subprocess.Popen(command, preexec_fn=die_with_parent)
    except OSError as exc:
        control.send(f"error cannot run festival: {exc}".encode())
        return 1
    try:
        control.send(f"started {festival.pid}".encode())
        serve(control, festival, port)
    finally:
        festival.kill()
        festival.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
