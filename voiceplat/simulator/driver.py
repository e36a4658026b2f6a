"""One simulated call's FreeSWITCH side without I/O: the script, the playout and the protocol.

`CallDriver` is fed ticks of the call's frame clock and the robot's messages, and answers with
the caller frames and TEXT replies to send. Times are seconds from call start; tick k happens at
k * frame. The websocket glue lives in `caller.py`.

By default the peer is mod_audio_fork as it is (see `peer_playout.py`): `disconnect` and
`transfer` only raise FreeSWITCH events, which nothing acts on unless the dialplan runs
`freeswitch/ws_bridge.lua`, so the call goes on until the robot closes the socket or the script
ends. `hangup_on_disconnect` behaves as that script does: hang up on `disconnect`, leave the
robot on `transfer`.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voiceplat.simulator.call_report import (
    SentMark,
    SentUtterance,
    answer_report,
    chunk_report,
    jitter_samples_ms,
    mark_report,
    quality_report,
    utterance_report,
)
from voiceplat.simulator.echo_path import EchoPath
from voiceplat.simulator.peer_playout import MarkRules, Playout
from voiceplat.simulator.report import (
    CallResult,
    EventReport,
    Stats,
    ms,
)
from voiceplat.simulator.script import ScriptItem
from voiceplat.simulator.turn_gaps import heard_stretches, turn_reports


@dataclass(frozen=True, slots=True)
class CallOptions:
    frame_ms: int = 20
    settle_s: float = 0.6
    answer_timeout_s: float = 15.0
    barge_in_after_s: float = 0.5
    timeout_s: float = 120.0
    marks: MarkRules = "module"
    """"module" (mod_audio_fork's rules), "ideal" (answered where sent) or "none"."""
    prebuffer: bool = True
    """mod_audio_fork's pre-buffer (160 ms, then 80 ms) before audio plays."""
    hangup_on_disconnect: bool = False
    """Hang up on `disconnect` and leave on `transfer`, as freeswitch/ws_bridge.lua does."""
    echo_db: float | None = None
    """Mix the robot's audio as heard back into the caller's frames at this level (dB, e.g.
    -20), through mu-law; None: no echo."""
    echo_ms: float = 120.0
    """Delay of that echo."""


_GATE, _STREAM, _DONE = "gate", "stream", "done"


class CallDriver:
    """The caller's script, ear and protocol handling for one call."""

    def __init__(self, script: tuple[ScriptItem, ...], options: CallOptions, *, keep_audio: bool):
        self.options = options
        self.period = options.frame_ms / 1000.0
        self.playout = Playout(
            frame_ms=options.frame_ms,
            keep_audio=keep_audio,
            marks=options.marks,
            prebuffer=options.prebuffer,
        )
        self.silence = self.playout.silence
        self.echo: EchoPath | None = None
        if options.echo_db is not None:
            samples = len(self.silence) // 2
            self.echo = EchoPath(options.echo_db, options.echo_ms, samples)
        self.caller_frames: list[bytes] | None = [] if keep_audio else None
        self.frames_sent = 0
        self.now = 0.0
        self.events: list[EventReport] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.end_reason: str | None = None
        self.robot_hung_up = False
        self.disconnect_at: float | None = None
        self.transferred = False
        self.transfer_target: Any = None
        self.hangup = False
        """The script is done: the caller hangs up."""
        self._items = script
        self._index = 0
        self._phase = _GATE
        self._gate_since = 0.0
        self._frames: tuple[bytes, ...] = ()
        self._pos = 0
        self.utterances: list[SentUtterance] = []
        self._settled = 0
        """Utterances before this index need no answer (a wait for quiet came after them)."""
        self._marks: list[SentMark] = []
        self._pending: dict[str, deque[SentMark]] = {}

    @property
    def ended(self) -> bool:
        """No more frames: the caller hung up or the robot ended the call."""
        return self.hangup or self.end_reason is not None

    # --- the frame clock ------------------------------------------------------------------

    def on_tick(self, k: int) -> tuple[bytes | None, list[str]]:
        """Tick k: plays one robot frame; returns the caller frame and TEXT replies to send."""
        now = self.now = k * self.period
        heard, reached = self.playout.tick(now)
        replies = [self._answer_mark(name, "playout", now) for name in reached] if reached else []
        if self.echo is not None:
            self.echo.heard(heard)
        if self.ended:
            return None, replies
        frame = self._caller_frame(now)
        if self.hangup:
            return None, replies
        if self.echo is not None:
            frame = self.echo.mix(frame)
        if self.caller_frames is not None:
            self.caller_frames.append(frame)
        self.frames_sent += 1
        return frame, replies

    def _caller_frame(self, now: float) -> bytes:
        if self._phase is _GATE and not self._open_gate(now):
            return self.silence
        if self._phase is _STREAM:
            frame = self._frames[self._pos]
            self._pos += 1
            if self._pos == len(self._frames):
                self._index += 1
                self._phase = _GATE
                self._gate_since = now
            return frame
        return self.silence

    def _open_gate(self, now: float) -> bool:
        """Starts the next step if its wait is over; returns whether a clip now streams."""
        while self._index < len(self._items):
            item = self._items[self._index]
            if not self._ready(item, now):
                return False
            if item.clip.frames:
                self._start(item, now)
                return True
            if item.kind == "wait_quiet":
                self._settled = len(self.utterances)
            self._index += 1
            self._gate_since = now
        if self._ready(None, now):
            self.hangup = True
            self._phase = _DONE
        return False

    def _start(self, item: ScriptItem, now: float) -> None:
        clip, period = item.clip, self.period
        self._frames, self._pos, self._phase = clip.frames, 0, _STREAM
        if item.kind == "pause":
            return
        # Frame j goes out at now + j*period and holds the audio just before that moment.
        self.utterances.append(
            SentUtterance(
                index=len(self.utterances),
                kind=item.kind,
                source=clip.source,
                sent_start=now - period,
                sent_end=now + (len(clip.frames) - 1) * period,
                speech_start=None
                if clip.speech_first is None
                else now + (clip.speech_first - 1) * period,
                speech_end=None if clip.speech_last is None else now + clip.speech_last * period,
            )
        )

    def _ready(self, item: ScriptItem | None, now: float) -> bool:
        """Whether `item` (None: the end of the script) may start now."""
        kind = "end" if item is None else item.kind
        if kind == "pause":
            return True
        opts, playout = self.options, self.playout
        if kind == "wait_quiet":
            assert item is not None and item.wait_s is not None
            # Quiet for the whole wait: counted from its start at the earliest.
            if playout.quiet(now, item.wait_s) and now - self._gate_since >= item.wait_s:
                return True
            if now - self._gate_since >= opts.answer_timeout_s:
                self.warnings.append(
                    f"wait for quiet after #{len(self.utterances) - 1}: the robot still talking "
                    f"after {opts.answer_timeout_s:g} s; went on"
                )
                return True
            return False
        last = self.utterances[-1] if self.utterances else None
        spoke_at = last.speech_start if last is not None else None
        spoke = spoke_at is not None
        if kind == "barge_in":
            answer = playout.current
            if (
                answer is not None
                and (spoke_at is None or answer.start > spoke_at)
                and now - answer.start
                >= (opts.barge_in_after_s if item is None or item.wait_s is None else item.wait_s)
            ):
                return True
            if now - self._gate_since >= opts.answer_timeout_s:
                self.warnings.append(
                    f"barge-in #{len(self.utterances)}: the robot did not talk within "
                    f"{opts.answer_timeout_s:g} s; spoke anyway"
                )
                return True
            return False
        # "say" and the end of the script: the robot has answered and gone quiet.
        answered = (
            spoke_at is None
            or self._settled > len(self.utterances) - 1
            or playout.answer_started_after(spoke_at) is not None
        )
        # The settle time counts from call start too: a robot gets the chance to greet first.
        if answered and now >= opts.settle_s and playout.quiet(now, opts.settle_s):
            return True
        spoke_end = last.speech_end if last is not None and spoke else None
        since = spoke_end if spoke_end is not None else self._gate_since
        if now - since >= opts.answer_timeout_s:
            what = "no answer" if not answered else "the robot still talking"
            self.warnings.append(
                f"{'end of script' if kind == 'end' else f'say #{len(self.utterances)}'}: "
                f"{what} after {opts.answer_timeout_s:g} s; went on"
            )
            return True
        return False

    # --- robot → caller -------------------------------------------------------------------

    def on_binary(self, data: bytes, now: float) -> None:
        if not self.ended:
            self.playout.push(data, now)

    def on_text(self, text: str, now: float) -> list[str]:
        """Handles one TEXT message; returns the TEXT replies to send at once."""
        try:
            message = json.loads(text)
        except ValueError:
            self.events.append(EventReport(type="<invalid>", t_ms=ms(now), data=text[:200]))
            self.warnings.append(f"at {ms(now)} ms: TEXT message is not JSON: {text[:80]!r}")
            return []
        kind = message.get("type") if isinstance(message, dict) else None
        data = message.get("data") if isinstance(message, dict) else None
        self.events.append(EventReport(type=str(kind), t_ms=ms(now), data=data))
        if kind == "killAudio":
            cleared = self.playout.kill(now)
            return [self._answer_mark(name, "cleared", now) for name in cleared]
        if kind == "mark":
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str):
                self.warnings.append(f"at {ms(now)} ms: mark without a string data.name: {text}")
                return []
            mark = SentMark(name, now, self.playout.received_total)
            self._marks.append(mark)
            if not self.playout.mark(name, now):
                mark.event = "dropped"  # the module discards it: MAX_MARKS are held
            else:
                self._pending.setdefault(name, deque()).append(mark)
        elif kind == "clearMarks":
            self.playout.clear_marks()
        elif kind == "disconnect":
            if self.disconnect_at is None:
                self.disconnect_at = now
            if self.options.hangup_on_disconnect:
                self.robot_hung_up = True
                self.end("robot_hung_up")
        elif kind == "transfer":
            self.transferred = True
            self.transfer_target = data.get("target") if isinstance(data, dict) else data
            if self.options.hangup_on_disconnect:
                self.end("transferred")
        else:
            self.warnings.append(f"at {ms(now)} ms: unknown TEXT message type {kind!r}")
        return []

    def _answer_mark(self, name: str, event: str, now: float) -> str:
        queue = self._pending.get(name)
        if queue:
            mark = queue.popleft()
            mark.event, mark.answered = event, now
        return json.dumps({"type": "mark", "data": {"name": name, "event": event}})

    # --- the end --------------------------------------------------------------------------

    def end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason

    def error(self, message: str) -> None:
        self.errors.append(message)

    def result(
        self,
        *,
        call_id: str,
        url: str,
        metadata: dict[str, Any],
        started_at: datetime,
        duration: float,
        dropped_frames: int = 0,
        sim_lag_max: float = 0.0,
    ) -> CallResult:
        """The report; closes the playout at `duration`."""
        playout = self.playout
        playout.close(duration)
        answers = playout.answers
        marks = [(m.name, m.pos) for m in self._marks]
        kills, starts = playout.kills, playout.stream_starts
        stretches = heard_stretches(marks, playout.runs, playout.bytes_per_s, kills, starts)
        utterances = [utterance_report(u, answers, stretches, kills) for u in self.utterances]
        turns = turn_reports(stretches, kills, marks, self.period, starts)
        jitter = jitter_samples_ms(playout)
        quality = quality_report(playout, jitter, dropped_frames)
        heard = b""
        if playout.heard is not None:
            heard = self.silence + b"".join(playout.heard)
        return CallResult(
            call_id=call_id,
            url=url,
            metadata=metadata,
            started_at=started_at,
            duration_ms=ms(duration),
            end_reason=self.end_reason or ("error" if self.errors else "caller_hung_up"),
            robot_hung_up=self.robot_hung_up,
            disconnect_ms=None if self.disconnect_at is None else ms(self.disconnect_at),
            transferred=self.transferred,
            transfer_target=self.transfer_target,
            errors=self.errors,
            warnings=self.warnings,
            frame_ms=self.options.frame_ms,
            frames_sent=self.frames_sent,
            utterances=utterances,
            answers=[answer_report(a) for a in answers],
            events=self.events,
            marks=[mark_report(m) for m in self._marks],
            quality=quality,
            robot_turns=turns,
            starvation_ms=Stats.of([t.starved_max_ms for t in turns]),
            chunks=[chunk_report(c) for c in playout.chunks or ()],
            jitter_samples_ms=jitter,
            sim_lag_max_ms=ms(sim_lag_max),
            caller_audio=b"".join(self.caller_frames) if self.caller_frames is not None else b"",
            robot_audio=bytes(playout.received) if playout.received is not None else b"",
            robot_heard=heard,
        )
