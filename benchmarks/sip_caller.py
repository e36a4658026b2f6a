"""sip_load.py's caller side: SIPp with benchmarks/sipp/uac_load.xml, the audio it plays, and
what its statistics and error log say about the calls."""

from __future__ import annotations

import csv
import random
import re
import socket
import subprocess
from collections import Counter
from pathlib import Path

from benchmarks.common import FIXTURES

SCENARIO = Path(__file__).resolve().parent / "sipp" / "uac_load.xml"
QUESTION = FIXTURES / "ru_question.wav"
LEAD_SILENCE_S = 2.0
"""Before each question: the greeting (~1.8 s) is over before the caller speaks."""
TAIL_SILENCE_S = 9.0
"""After each question: the answer (~5 s after the end of speech) ends before the next one."""


def udp_port(even: bool = False) -> int:
    """A free loopback UDP port (even: RTP's convention, and SIPp's media port + 2 free too)."""
    while True:
        port = random.randrange(20000, 60000, 2 if even else 1)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
                a.bind(("127.0.0.1", port))
                if even:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                        b.bind(("127.0.0.1", port + 2))
            return port
        except OSError:
            continue


def caller_audio(dest: Path) -> Path:
    """caller.al: LEAD_SILENCE_S, the question, TAIL_SILENCE_S, as raw 8 kHz A-law (sox)."""
    path = dest / "caller.al"
    command = ["sox", str(QUESTION), "-t", "raw", "-e", "a-law", "-r", "8000", "-c", "1"]
    command += [str(path), "pad", f"{LEAD_SILENCE_S:g}", f"{TAIL_SILENCE_S:g}"]
    subprocess.run(command, check=True, capture_output=True)
    return path


def sipp_command(
    n: int, rate: float, hold_ms: int, sip_port: int, media_port: int, out: Path
) -> list[str]:
    return [
        "sipp",
        f"127.0.0.1:{sip_port}",
        "-sf",
        str(SCENARIO),
        "-s",
        "robot",
        "-m",
        str(n),
        "-l",
        str(n),
        "-r",
        f"{rate:g}",
        "-rp",
        "1000",
        "-d",
        str(hold_ms),
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-p",
        str(udp_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(media_port),
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(out / "sipp_stats.csv"),
        "-trace_err",
        "-error_file",
        str(out / "sipp_errors.log"),
        "-timeout",
        f"{hold_ms // 1000 + 120}s",
        "-timeout_error",
    ]


def sipp_counts(out: Path) -> tuple[int | None, int | None]:
    """SuccessfulCall and FailedCall (cumulative) from the last line of SIPp's stats file."""
    path = out / "sipp_stats.csv"
    if not path.exists():
        return None, None
    rows = list(csv.DictReader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if not rows:
        return None, None
    last = rows[-1]
    return int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])


SIPP_ABORT = re.compile(
    r"Aborting call on (?:unexpected message|.*?) for Call-I[Dd] '[^']*': "
    r"(while expecting '[^']*')[^,]*, received '([^\r\n']*)"
)


def sipp_failures(out: Path) -> Counter[str]:
    """SIPp's error log, summed: "while expecting '100', received 'SIP/2.0 486 Busy Here'"."""
    path = out / "sipp_errors.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    found = Counter(f"{m[1]}, received {m[2].strip()!r}" for m in SIPP_ABORT.finditer(text))
    other = sum(1 for line in text.splitlines() if "Aborting call" in line) - found.total()
    if other > 0:
        found["other (see sipp_errors.log)"] += other
    return found
