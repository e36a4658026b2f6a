"""Admission control: whether this process takes one more call, whatever ingress brings it.

Two limits, both off by default (today's behaviour: every call is taken):

- `admission.max_calls`: calls at once in the process, all ingresses together (SIP has its own
  `sip.max_calls` too; the lower one refuses first);
- `admission.max_queue_wait_ms`: a budget for the local models' queues. A new call's first answer
  needs a job on each model worker (ASR, LLM); a job waits behind the jobs queued there, each
  taking the worker's measured run time (`SingleWorker.service_s`), so the queue is the sum
  over workers of `pending * service_s`. The new caller first hears the greeting: the jobs
  queued now run meanwhile, so its first answer waits for what is left of them after the
  greeting (`lead_s`). Above the budget the call is refused: it could not be answered within the
  latency goal, and taking it would slow every call in progress.

The decision is sans-I/O (`Admission.decide`: counts and queue snapshots in, a `Decision` out);
each ingress refuses the way its protocol allows (telephony/busy.py, the servers) and may answer
with `busy_phrase` / `busy_wav` first. Refusals are counted: `voiceplat_calls_refused_total{reason}`.

`filler_after_ms` is the in-call side of the same overload: an answer whose first words could not
be heard this long after the caller stopped speaking (its LLM job waits in the queue behind other
calls' answers, or TTS is slow) is opened by the robot's filler, so the caller never hears a
silence longer than that (sessions/fillers.py). Its default is the latency goal, 2.5 s: a robot
that answers within the goal says no more fillers than before.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from voiceplat.providers import worker

if TYPE_CHECKING:
    from voiceplat.robot import Robot

RefusalReason = Literal["max_calls", "queue_wait"]

REFUSED = Counter(
    "voiceplat_calls_refused",
    "Calls refused by admission control (max_calls, queue_wait), any ingress.",
    ["reason"],
)


class AdmissionSettings(BaseModel):
    """`admission` in a robot's config.json."""

    model_config = ConfigDict(extra="forbid")

    max_calls: int | None = Field(
        None, ge=1, description="calls at once in the process, all ingresses (None: no limit)"
    )
    max_queue_wait_ms: int | None = Field(
        None,
        ge=0,
        description="refuse a new call when its first answer would wait longer than this in "
        "the local models' queues (None: no budget)",
    )
    busy_phrase: str | None = Field(
        None, min_length=1, description="said to a refused call before hanging up (synthesised)"
    )
    busy_wav: str | None = Field(
        None, min_length=1, description="a WAV in the robot folder said to a refused call instead"
    )
    retry_after_s: int = Field(5, ge=1, le=3600, description="SIP 503's Retry-After")
    filler_after_ms: int | None = Field(
        2500,
        ge=0,
        description="an answer not started this long after the caller's turn is preceded by "
        "filler_text (None: only gaps inside an answer get it)",
    )

    @model_validator(mode="after")
    def _one_phrase(self) -> AdmissionSettings:
        if self.busy_phrase is not None and self.busy_wav is not None:
            raise ValueError("set busy_phrase or busy_wav, not both")
        return self

    def problems(self, robot_dir: Path) -> list[str]:
        """`voiceplat check` / start: a busy_wav that is not there."""
        if self.busy_wav is not None and not (robot_dir / self.busy_wav).is_file():
            return [f"admission.busy_wav: {robot_dir / self.busy_wav} does not exist"]
        return []

    @property
    def limits(self) -> bool:
        return self.max_calls is not None or self.max_queue_wait_ms is not None

    @property
    def speaks(self) -> bool:
        """A refused call is answered with a phrase before it is hung up."""
        return self.busy_phrase is not None or self.busy_wav is not None


@dataclass(frozen=True, slots=True)
class QueueView:
    """One model worker as admission sees it: jobs queued or running, and a job's run time."""

    name: str
    pending: int
    service_s: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    reason: RefusalReason | None = None
    detail: str = ""
    """Why, for the log line and the WebSocket close reason (no secrets in it)."""
    retry_after_s: int | None = None


ADMITTED = Decision(True)


def model_queues() -> list[QueueView]:
    """The process's model workers now (thread-safe snapshot)."""
    return [QueueView(w.name, w.pending, w.service_s) for w in worker.model_workers()]


def queue_wait_s(queues: Iterable[QueueView]) -> float:
    """How long a new job on each worker would wait behind what is queued: the sum over the
    workers of pending jobs times their run time (a worker never measured counts 0: a call is
    refused on evidence, not on guesses)."""
    return sum(q.pending * q.service_s for q in queues if q.service_s is not None)


class Admission:
    """One process's admission decisions. Thread-safe: SIP asks from the PJSIP thread."""

    def __init__(
        self,
        settings: AdmissionSettings,
        calls_in_progress: Callable[[], int],
        queues: Callable[[], list[QueueView]] = model_queues,
        lead_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.settings = settings
        self._calls_in_progress = calls_in_progress
        self._queues = queues
        self._lead_s = lead_s
        """Time from a call's start to its first model job (its greeting plays meanwhile)."""
        self._starting = 0
        """Calls admitted whose session has not started yet (not in calls_in_progress)."""
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {"max_calls": 0, "queue_wait": 0}

    def decide(self) -> Decision:
        """The verdict on one more call now; reserves nothing (see `admit`)."""
        with self._lock:
            return self._verdict()

    def admit(self) -> Decision:
        """`decide`, and an admitted call holds its place until `starting()` (its session then
        counts itself) or `abandon()`; a refusal is counted."""
        with self._lock:  # one decision at a time: two calls cannot both take the last place
            decision = self._verdict()
            if decision.admitted:
                self._starting += 1
        if not decision.admitted:
            self.count_refusal(decision)
        return decision

    def _verdict(self) -> Decision:
        """Under the lock."""
        settings = self.settings
        if settings.max_calls is not None:
            active = self._calls_in_progress() + self._starting
            if active >= settings.max_calls:
                detail = f"{active} calls in progress (max_calls {settings.max_calls})"
                return Decision(False, "max_calls", detail)
        if settings.max_queue_wait_ms is not None:
            queued_s = queue_wait_s(self._queues())
            wait_ms = max(0.0, queued_s - self._lead_s()) * 1000
            if wait_ms > settings.max_queue_wait_ms:
                detail = (
                    f"model queues ~{queued_s * 1000:.0f} ms, ~{wait_ms:.0f} ms after the "
                    f"greeting (max_queue_wait_ms {settings.max_queue_wait_ms})"
                )
                return Decision(False, "queue_wait", detail, retry_after_s=settings.retry_after_s)
        return ADMITTED

    def starting(self) -> None:
        """The admitted call's session starts now (it counts itself in calls_in_progress)."""
        with self._lock:
            self._starting = max(0, self._starting - 1)

    abandon = starting
    """The admitted call ended before its session started."""

    def count_refusal(self, decision: Decision) -> None:
        if decision.reason is None:
            return
        with self._lock:
            self.refused[decision.reason] += 1
        REFUSED.labels(decision.reason).inc()


def greeting_s(robot: Robot) -> float:
    """How long the robot's greeting plays: its WAV, or its text at the measured speech rate."""
    audio = getattr(robot, "greeting_audio", None)
    if audio is not None:
        return float(audio.duration_s)
    text = robot.config.greeting_text
    rates = getattr(robot, "rates", None)
    return rates.speech_s(len(text)) if text and rates is not None else 0.0


# -- one Admission per robot, shared by its ingresses -------------------------------------------
_by_robot: dict[int, Admission] = {}
_current: weakref.ref[Admission] | None = None
_registry_lock = threading.Lock()


def admission_for(robot: Robot) -> Admission:
    """The robot's Admission (made on first use; every ingress of the process shares it)."""
    global _current
    with _registry_lock:
        found = _by_robot.get(id(robot))
        if found is None:
            found = Admission(
                robot.config.admission,
                lambda: robot.calls_in_progress,
                lead_s=lambda: greeting_s(robot),
            )
            _by_robot[id(robot)] = found
            weakref.finalize(robot, _by_robot.pop, id(robot), None)
        _current = weakref.ref(found)
        return found


def current() -> Admission | None:
    """The process's Admission, for an ingress that has no robot at hand (SIP's PJSIP thread):
    the one of the robot that took a call last. A process serves one robot."""
    with _registry_lock:
        return _current() if _current is not None else None


def clear() -> None:
    """Forgets every robot's Admission (tests; a process that loads its robot anew)."""
    global _current
    with _registry_lock:
        _by_robot.clear()
        _current = None
