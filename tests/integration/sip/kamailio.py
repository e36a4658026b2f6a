"""Kamailio as the SIP load balancer of deploy/kamailio/ for the tests: the shipped kamailio.cfg on
a free 127.0.0.1 port with its own dispatcher list, control socket and short timers, in a folder
of the test (no root, nothing under /etc or /run); and reading SIPp's message log call by call."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.child_process import ChildOutput
from tests.sip_tools import HANG_S, ROOT, free_port, require_tool

KAMAILIO_CFG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
DISPATCHER_LIST = ROOT / "deploy" / "kamailio" / "dispatcher.list"
VIA_PROXY_SCENARIO = Path(__file__).with_name("uac_via_proxy.xml")
"""A call through a proxy: ACK and BYE follow the Record-Route (SIPp's rrs) to the robot."""

READY = "kamailio ready"


def check_config(cfg: Path = KAMAILIO_CFG, *defines: str) -> subprocess.CompletedProcess[str]:
    """`kamailio -c -f cfg`: parses the file and loads its modules, runs nothing."""
    binary = require_tool("kamailio")
    args = [binary, "-c", "-f", str(cfg), *[f"-A{d}" for d in defines]]
    return subprocess.run(args, capture_output=True, text=True, timeout=HANG_S)


class Kamailio:
    """`kamailio -DD -E` (foreground, log to stderr) balancing over `robots` ("host:port")."""

    def __init__(self, workdir: Path, robots: Sequence[str], *, ping_interval_s: int = 1) -> None:
        binary = require_tool("kamailio")
        require_tool("kamcmd")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.port = workdir, free_port()
        self.control = f"unixs:{workdir / 'kamailio_ctl'}"
        dispatcher_list = workdir / "dispatcher.list"
        dispatcher_list.write_text("".join(f"1 sip:{robot} 0 0\n" for robot in robots))
        defines = {
            "DISPATCHER_LIST": f'"{dispatcher_list}"',
            "CTL_SOCKET": f'"{self.control}"',
            "PING_INTERVAL": str(ping_interval_s),
            "FR_TIMER": "1000",  # a dead robot is noticed within a second of an INVITE
            "CHILDREN": "1",  # one UDP worker: replies reach SIPp in the order they came
        }
        command = [binary, "-DD", "-E", "-f", str(KAMAILIO_CFG)]
        command += ["-l", f"udp:127.0.0.1:{self.port}", "-Y", str(workdir)]
        command += ["-P", str(workdir / "kamailio.pid")]
        command += [f"-A{name}={value}" for name, value in defines.items()]
        self.log_path = workdir / "kamailio.log"
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output = ChildOutput(self.process, self.log_path, "kamailio")
        try:
            self.wait_output(READY)
        except BaseException:
            self.stop()
            raise

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def tail(self, limit: int = 6000) -> str:
        return self.output.tail(limit)

    def wait_output(self, text: str, timeout: float = HANG_S) -> str:
        return self.output.wait_output(text, timeout)

    def states(self) -> dict[str, str]:
        """`kamcmd dispatcher.list`: each destination's URI -> its FLAGS (AP active and probed,
        IP inactive and probed, TP trying)."""
        kamcmd = require_tool("kamcmd")
        done = subprocess.run(
            [kamcmd, "-s", self.control, "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert done.returncode == 0, f"kamcmd failed: {done.stderr}\n{self.tail()}"
        found = re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", done.stdout)
        return {uri: flags for uri, flags in found}

    def wait_state(self, robot: str, state: str, timeout: float = HANG_S) -> dict[str, str]:
        """Waits until the dispatcher holds `robot` ("host:port") in `state` ("A" active, "I"
        inactive): what its OPTIONS probes decide, a second or two after a change."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if states.get(f"sip:{robot}", "").startswith(state):
                return states
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{robot} never {state}: {states}\n{self.tail()}")
            # The dispatcher announces a state change only in its log, not to another process.
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(HANG_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.join(HANG_S)


# -- SIPp's message log, call by call -------------------------------------------------------------


@dataclass
class CallSeen:
    """One call as the SIPp caller saw it: who answered it (the port in the 200 OK's Contact) and
    whether the BYE was answered 200 (the call finished)."""

    call_id: str
    answered_by: int | None = None
    finished: bool = False


_ENTRY = re.compile(r"^-{5,} .*$", re.MULTILINE)


def calls_seen(messages: str) -> dict[str, CallSeen]:
    """Every call of a SIPp run (-trace_msg), by Call-ID."""
    calls: dict[str, CallSeen] = {}
    for entry in _ENTRY.split(messages):
        if "message received" not in entry:
            continue
        call_id = re.search(r"^Call-ID:\s*(\S+)", entry, re.MULTILINE | re.IGNORECASE)
        status = re.search(r"^SIP/2\.0 (\d{3})", entry, re.MULTILINE)
        cseq = re.search(r"^CSeq:\s*\d+\s+(\w+)", entry, re.MULTILINE | re.IGNORECASE)
        if not (call_id and status and cseq):
            continue
        call = calls.setdefault(call_id.group(1), CallSeen(call_id.group(1)))
        if status.group(1) == "200" and cseq.group(1).upper() == "INVITE":
            contact = re.search(
                r"^(?:Contact|m):[^\n]*?:(\d+)[;>]", entry, re.MULTILINE | re.IGNORECASE
            )
            call.answered_by = int(contact.group(1)) if contact else None
        if status.group(1) == "200" and cseq.group(1).upper() == "BYE":
            call.finished = True
    return calls
