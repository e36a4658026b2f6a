"""SIP load benchmark: N concurrent SIPp calls with RTP on one robot process.

    .venv/bin/python benchmarks/sip_load.py                         # N = 20, 50, 100; 60 s each
    .venv/bin/python benchmarks/sip_load.py --calls 100 --duration 60 --nice -10
    .venv/bin/python benchmarks/sip_load.py --calls 100 --py-spy /tmp/prof
    .venv/bin/python benchmarks/sip_load.py --calls 5 --set tts.chunk_delay_ms=150   # gaps seen?

The robot is the `echo` test robot (fake ASR, LLM and TTS that answer at once) with a `sip`
section on free loopback ports, served by `voiceplat serve` in its own process. SIPp (Debian
`sip-tester`, 3.6 with RTPSTREAM) places the calls with benchmarks/sipp/uac_load.xml: INVITE
(PCMA), then caller audio from its media port with `rtp_stream` (tests/fixtures/ru_question.wav
as raw A-law, between silences, looped), BYE after `-d`. Calls start at `--rate` per second and
each is held long enough that all N are up together for `--duration` seconds.

Every caller asks a question every ~13.5 s; the robot answers each with a fixed reply of ~6 s of
the fake TTS's tone. The robot's RTP is captured as it reaches SIPp (sip_rtp.py: off the loopback
interface, kernel timestamps; needs root), and per call gives RFC 3550 jitter, inter-arrival
gaps, lost packets and gaps inside answers (silent or missing 20 ms frames inside the tone).
Robot CPU is its process's CPU time over the window when all N calls were up. Prints Markdown;
asserts nothing.

The calls a robot takes at once are capped by the pjsua2 build's PJSUA_MAX_CALLS (4 in PyPI's
pjsua2-python wheel: the rest get 486, which the table shows as failed calls). The robot
imports pjsua2 from PYTHONPATH first, so a build with a larger limit can be measured without
installing it: `PYTHONPATH=/path/to/built/pjsua2 .venv/bin/python benchmarks/sip_load.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a file: the repository root goes first on sys.path, for `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.common import (
    MACHINE,
    WAIT,
    CpuSampler,
    RobotProcess,
    call_records,
    cell,
    echo_robot,
    markdown,
    pct,
)
from benchmarks.latency import nested
from benchmarks.platform_concurrency import hot_spots, start_py_spy
from benchmarks.sip_caller import (
    caller_audio,
    sipp_command,
    sipp_counts,
    sipp_failures,
    udp_port,
)
from benchmarks.sip_rtp import RtpCapture, StreamStats

REPLY = (
    "Это ответ робота для нагрузочного теста. "
    "Он звучит несколько секунд подряд, и любой разрыв в нём слышен."
)
"""The fake LLM's answer to every question: ~100 characters, ~6 s of tone at 60 ms a character."""


@dataclass
class Row:
    calls: int
    load_1m: float
    steady_s: float
    robot_cpu_pct: float | None
    robot_cpu_peak_pct: float | None
    robot_wait_pct: float | None
    sipp_cpu_pct: float | None
    machine_cpu_pct: float | None
    streams: int
    packets: int
    capture_drops: int
    jitter_ms: dict[str, Any]
    max_gap_ms: float
    late_packets: int
    lost_packets: int
    answers: int
    answer_ms: dict[str, Any]
    answer_min_ms: float | None
    answer_gaps: int
    answer_gap_ms: dict[str, Any]
    calls_with_gaps: int
    sipp_successful: int | None
    sipp_failed: int | None
    sipp_failures: dict[str, int]
    """Why SIPp aborted calls: what it expected and the first line of what came instead."""
    records: int
    end_reasons: dict[str, int]
    robot_exit: int | None
    """The robot's exit status after SIGINT (negative: killed by that signal, e.g. -11)."""
    robot_log: dict[str, int]
    robot_warnings: dict[str, int]
    robot_tracebacks: dict[str, int]
    """Exceptions the robot printed outside its logger (e.g. in a PJSIP callback), by last line."""
    """The robot's most frequent WARNING/ERROR messages (without their time), with counts."""
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_ms_per_call_s(self) -> float | None:
        """Robot CPU per second of one call that was up (10 ms = 1 % of a core)."""
        if self.robot_cpu_pct is None or not self.streams:
            return None
        return round(self.robot_cpu_pct * 10 / self.streams, 2)


def robot_config(n: int, sip_port: int, rtp_port: int, rate: float) -> dict[str, Any]:
    return {
        "llm": {"reply": REPLY},
        "sip": {
            "host": "127.0.0.1",
            "port": sip_port,
            "transports": ["udp"],
            "rtp_port": rtp_port,
            "rtp_port_range": 4 * n + 40,
            "codecs": ["PCMA", "PCMU"],
            "allow_from": ["127.0.0.0/8"],
            "max_calls": n + 10,
            "invites_per_s": rate * 2,
            "invite_burst": n,
            "rtp_timeout_s": 30,
        },
    }


def wait_for_line(robot: RobotProcess, text: str, timeout_s: float) -> None:
    """The robot's serve.log has `text` (it prints 'sip: listening' once SIP is up), bounded."""
    deadline = time.monotonic() + timeout_s
    while text not in robot.log_path.read_text(encoding="utf-8", errors="replace"):
        if robot.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the robot did not print {text!r}: {robot.log_tail()}")
        time.sleep(0.1)


def log_messages(robot: RobotProcess) -> Counter[str]:
    """The robot's WARNING/ERROR lines by message, the timestamp cut off."""
    text = robot.log_path.read_text(encoding="utf-8", errors="replace")
    return Counter(
        line.split(level, 1)[1].strip()
        for line in text.splitlines()
        for level in (" WARNING ", " ERROR ")
        if level in line
    )


def tracebacks(robot: RobotProcess) -> Counter[str]:
    """Tracebacks in the robot's output (PJSIP's callbacks print theirs, not logged), each by
    its last line; and "Fatal Python error" lines."""
    lines = robot.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    found: Counter[str] = Counter()
    for i, line in enumerate(lines):
        if line.startswith("Fatal Python error"):
            found[line] += 1
        elif line.startswith("Traceback (most recent call last)"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), i)
            found[lines[end]] += 1
    return found


def measure(
    work: Path,
    n: int,
    duration_s: float,
    rate: float,
    py_spy: Path | None,
    overrides: dict[str, Any],
) -> Row:
    out = work / f"calls{n}"
    out.mkdir(parents=True)
    caller_audio(out)
    sip_port, rtp_port, media_port = udp_port(), udp_port(even=True), udp_port(even=True)
    robot_dir = echo_robot(out / "robot", robot_config(n, sip_port, rtp_port, rate), overrides)
    ramp_s = n / rate
    hold_ms = round((duration_s + ramp_s + 2.0) * 1000)
    load = os.getloadavg()[0]
    errors: list[str] = []
    robot = RobotProcess(robot_dir, grace_s=5.0)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_for_line(robot, "sip: listening", 60.0)
        capture = RtpCapture((rtp_port, rtp_port + 4 * n + 40), media_port)
        capture.start()
        sipp_log = (out / "sipp_stdout.log").open("wb")
        sipp = subprocess.Popen(
            sipp_command(n, rate, hold_ms, sip_port, media_port, out),
            cwd=out,  # the scenario plays caller.al from here
            stdout=sipp_log,
            stderr=subprocess.STDOUT,
        )
        sampler = CpuSampler({"robot": robot.pid, "sipp": sipp.pid})
        sampler.start()
        if py_spy is not None:
            spy = start_py_spy(robot.pid, py_spy / f"robot_{n}.txt", ramp_s + 5.0)
        try:
            sipp.wait(timeout=hold_ms / 1000 + 180)
        except subprocess.TimeoutExpired:
            errors.append("SIPp did not finish; killed")
            sipp.kill()
            sipp.wait()
        finally:
            sampler.stop()
            capture.stop()
            sipp_log.close()
        if sipp.returncode:
            errors.append(f"SIPp exited {sipp.returncode}")
        successful, failed = sipp_counts(out)
        # Every call SIPp saw answered leaves a record; refused ones leave none.
        records = call_records(robot_dir, n if successful is None else successful, 30.0)
    finally:
        if spy is not None:
            spy.wait()
        robot.stop()
    stats = [StreamStats.of(ssrc, s) for ssrc, s in capture.streams.items() if len(s.seq) > 1]
    # All N calls up: from the last stream's first packet to the first stream's last one.
    start = max((s.first_s for s in stats), default=0.0) + 1.0
    end = min((s.last_s for s in stats), default=0.0) - 1.0
    if end - start < 2.0:
        errors.append("fewer than 2 s with every call up: CPU is over the whole run")
        start, end = 0.0, time.time()
    reasons = Counter(
        f"{r['call']['status']}/{r['call'].get('end_reason')}" for r in records.values()
    )
    return Row(
        calls=n,
        load_1m=round(load, 2),
        steady_s=round(end - start, 1),
        robot_cpu_pct=sampler.cpu_percent("robot", start, end),
        robot_cpu_peak_pct=sampler.cpu_peak("robot", start, end),
        robot_wait_pct=sampler.cpu_percent(f"robot{WAIT}", start, end),
        sipp_cpu_pct=sampler.cpu_percent("sipp", start, end),
        machine_cpu_pct=sampler.cpu_percent(MACHINE, start, end),
        streams=len(stats),
        packets=sum(s.packets for s in stats),
        capture_drops=capture.kernel_drops,
        jitter_ms=pct([j for s in stats for j in s.jitter_ms]),
        max_gap_ms=max((s.max_gap_ms for s in stats), default=0.0),
        late_packets=sum(s.late for s in stats),
        lost_packets=sum(s.lost for s in stats),
        answers=sum(len(s.answers_ms) for s in stats),
        answer_ms=pct([a for s in stats for a in s.answers_ms]),
        answer_min_ms=min((a for s in stats for a in s.answers_ms), default=None),
        answer_gaps=sum(len(s.answer_gaps_ms) for s in stats),
        answer_gap_ms=pct([g for s in stats for g in s.answer_gaps_ms]),
        calls_with_gaps=sum(1 for s in stats if s.answer_gaps_ms),
        sipp_successful=successful,
        sipp_failed=failed,
        sipp_failures=dict(sipp_failures(out)),
        records=len(records),
        end_reasons=dict(reasons),
        robot_exit=robot.proc.returncode,
        robot_log=dict(robot.log_counts()),
        robot_warnings=dict(log_messages(robot).most_common(5)),
        robot_tracebacks=dict(tracebacks(robot)),
        errors=errors,
    )


def table(rows: list[Row]) -> str:
    header = [
        "calls (up)",
        "robot CPU % avg / peak 1 s",
        "robot CPU ms per call·s",
        "robot waits for CPU %",
        "jitter p50 / p95 / p99 ms",
        "max inter-arrival gap ms",
        "gaps > 40 ms",
        "lost packets",
        "answers (ms p50 / min)",
        "gaps inside answers (calls)",
        "calls failed (SIPp)",
        "call records",
        "SIPp CPU %",
        "machine CPU % (of 200)",
        "load 1m",
    ]
    body = [
        [
            f"{r.calls} ({r.streams})",
            f"{cell(r.robot_cpu_pct)} / {cell(r.robot_cpu_peak_pct)}",
            r.cpu_ms_per_call_s,
            r.robot_wait_pct,
            " / ".join(cell(r.jitter_ms[k]) for k in ("p50", "p95", "p99")),
            r.max_gap_ms,
            r.late_packets,
            r.lost_packets,
            f"{r.answers} ({cell(r.answer_ms['p50'])} / {cell(r.answer_min_ms)})",
            f"{r.answer_gaps} ({r.calls_with_gaps})",
            r.sipp_failed,
            ", ".join(f"{k} {v}" for k, v in sorted(r.end_reasons.items())),
            r.sipp_cpu_pct,
            r.machine_cpu_pct,
            r.load_1m,
        ]
        for r in rows
    ]
    return markdown(header, body)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="20,50,100", help="one row per N, e.g. 20,50,100")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds all N calls are up together"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the robot, SIPp and the capture (negative: ahead of other "
        "work on a shared machine; needs root)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="robot config override, e.g. tts.chunk_delay_ms=150 (a TTS slower than real time: "
        "the gaps it makes show up in the table); repeatable",
    )
    parser.add_argument("--py-spy", type=Path, help="profile the robot of each row into this dir")
    parser.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the robots' folders and logs")
    args = parser.parse_args(argv)
    args.calls = [int(x) for x in args.calls.split(",")]
    args.overrides = nested({k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("sipp", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian: sip-tester, sox)", file=sys.stderr)
            return 2
    load = os.getloadavg()
    print(
        f"# voiceplat SIP load benchmark\n\nmachine: {os.cpu_count()} CPUs, load average at "
        f"start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; python {sys.version.split()[0]}; "
        f"nice {args.nice}; {args.duration:g} s with all calls up, {args.rate:g} new calls/s; "
        f"overrides {args.overrides or 'none'}\n",
        flush=True,
    )
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # the robot and SIPp inherit it
    work = Path(tempfile.mkdtemp(prefix="voiceplat-sip-load-"))
    rows: list[Row] = []
    try:
        for n in args.calls:
            row = measure(work, n, args.duration, args.rate, args.py_spy, args.overrides)
            rows.append(row)
            print(
                f"- {n} calls: {row.streams} RTP streams, {row.packets} packets captured "
                f"({row.capture_drops} dropped by the capture), all up for {row.steady_s:g} s; "
                f"answer gaps ms {row.answer_gap_ms}; SIPp: {row.sipp_successful} calls "
                f"succeeded, {row.sipp_failed} failed; the robot exited {row.robot_exit}",
                flush=True,
            )
            for error in row.errors[:8]:
                print(f"  ERROR: {error}", flush=True)
            for failure, count in row.sipp_failures.items():
                print(f"  SIPp aborted {count} call(s) {failure}", flush=True)
            for message, count in row.robot_tracebacks.items():
                print(f"  robot output x{count}: {message}", flush=True)
            for message, count in row.robot_warnings.items():
                print(f"  robot log x{count}: {message}", flush=True)
        print("\n" + table(rows) + "\n")
        if args.py_spy is not None:
            for path in sorted(args.py_spy.glob("robot_*.txt")):
                print("## Robot profile\n\n" + hot_spots(path) + "\n")
    finally:
        if args.keep:
            print(f"robots and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json is not None:
        report = [{**asdict(r), "cpu_ms_per_call_s": r.cpu_ms_per_call_s} for r in rows]
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
