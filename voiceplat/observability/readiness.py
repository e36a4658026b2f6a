"""Whether a robot process should get calls now (`GET /ready`): it accepts calls (started, not
shutting down), its providers are loaded, no local model's queue is full (a new call would get
errors instead of answers), and every store is reachable or spooling (a store that is down does
not make the robot unready: its sink keeps what the robot records, in order, until the store is
back; a spool that could not be opened does)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from voiceplat.providers import worker
from voiceplat.robot import Robot, kinds_for
from voiceplat.storage.recorder import Recorder, sink_name
from voiceplat.storage.spooled_sink import SpooledSink


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] = Field(default_factory=list, description="Why not ready (empty: ready).")
    stores: dict[str, str] = Field(
        default_factory=dict, description="Each store sink: reachable, or spooling (N items)."
    )


def store_state(sink: SpooledSink) -> tuple[str, str | None]:
    """(state, problem): the store's state for /ready, and why it makes the robot unready."""
    if sink.connected and sink.available:
        return "reachable", None
    if not sink.spool.path.exists():  # Spool.open creates the file; it failed at start
        return "broken", f"store {sink.name}: its spool {sink.spool.path} could not be opened"
    return f"spooling ({sink.spool.pending} items)", None


def readiness(robot: Robot, recorder: Recorder, *, accepting: bool) -> Readiness:
    reasons: list[str] = []
    if not accepting:
        reasons.append("not accepting calls (starting or shutting down)")
    missing = [kind for kind in kinds_for(robot.config) if kind not in robot.providers]
    if missing:
        reasons.append(f"providers not loaded: {', '.join(missing)}")
    full = worker.saturated()
    if full:
        reasons.append(f"model queue full: {', '.join(sorted(full))}")
    stores: dict[str, str] = {}
    for sink in recorder.sinks:
        if isinstance(sink, SpooledSink):
            state, problem = store_state(sink)
            stores[sink_name(sink)] = state
            if problem:
                reasons.append(problem)
    return Readiness(ready=not reasons, reasons=reasons, stores=stores)
