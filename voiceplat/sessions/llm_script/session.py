"""llm_script mode: utterance → ASR → the LLM picks one prerecorded track → the track plays.

Listening, barge-in, no-input and speculative ASR are ListeningSession's. The LLM's answer is
constrained to the track ids (`LLM.choose`); a failure, a timeout or an answer naming no track plays
the fallback track, with the error in the robot turn's record. The tracks' audio was loaded and
resampled to 8 kHz with the robot, so a turn only queues bytes. A track with `ends_call` hangs up
and one with `transfer` transfers the call (sessions/transfer.py: a refusal says
`transfer.failed_text` and the call goes on), both only once the caller has heard it to the end; a
caller who cuts such a track is listened to instead. The caller's keys do only their actions
(config.json's `dtmf`); "repeat" plays the last track again.

In the dialog the LLM sees, a robot turn that played a track is that track's id, not its words:
the model then continues a dialog whose robot lines are ids. Measured with Qwen2.5 1.5B on the
shipped robot: 14 of 15 test phrases chosen right against 13 of 15 with the tracks' words (which
pull a small model towards answering in prose), and shorter prompts. The call record keeps the words (the turn's `text`) and the id (`track`).
"""

from __future__ import annotations

import asyncio

from voiceplat.errors import RobotError
from voiceplat.providers.base import Message
from voiceplat.robot import Robot
from voiceplat.sessions.dtmf import KeyActions, SpeakerKeyActions, last_robot_turn
from voiceplat.sessions.listening import ListeningSession
from voiceplat.sessions.llm_script.tracks import Track, TrackSet
from voiceplat.sessions.timeouts import ProviderTimeout, session_timeout
from voiceplat.sessions.turn import RobotTurn
from voiceplat.storage.recorder import Recorder
from voiceplat.telephony.channel import CallChannel


class LlmScriptSession(ListeningSession):
    mode = "llm_script"

    def __init__(self, robot: Robot, channel: CallChannel, recorder: Recorder) -> None:
        super().__init__(robot, channel, recorder)
        if robot.tracks is None:
            raise RobotError(f"{robot.directory}: an llm_script robot needs tracks.json")
        self.tracks: TrackSet = robot.tracks

    def _record_robot_turn(self, turn: RobotTurn) -> None:
        history = self.transcript.history
        heard_before = len(history)
        super()._record_robot_turn(turn)
        if turn.track is not None and len(history) > heard_before:
            history[-1] = Message("assistant", turn.track)

    async def greet(self) -> None:
        track = self.tracks.greeting
        if track is None:
            await super().greet()
            return
        interruptible = self.config.greeting_interruptible
        self.start_speaker(lambda: self.play_track(track, interruptible=interruptible))

    async def not_heard(self, error: Exception) -> None:
        await self._play_fallback(RobotTurn(self.transcript.next_idx()), error)

    async def reply(self, turn: RobotTurn) -> None:
        asked = self.clock()
        try:
            chosen = await self._choose()
        except Exception as exc:  # a failed choice is the fallback track, never a silent robot
            turn.llm_ttft_ms = (self.clock() - asked) * 1000
            await self._play_fallback(turn, exc)
            return
        turn.llm_ttft_ms = (self.clock() - asked) * 1000  # the time the LLM took to choose
        self.call.event("track_chosen", turn=turn.idx, track=chosen.id, ms=round(turn.llm_ttft_ms))
        await self.play_track(chosen, turn)

    async def _choose(self) -> Track:
        llm = self.robot.llm
        try:
            async with asyncio.timeout(session_timeout(llm)):
                chosen = await llm.choose(self.transcript.dialog(), self.tracks.ids)
        except TimeoutError:
            raise ProviderTimeout(
                f"LLM chose no track within {llm.settings.timeout_s:g} s"
            ) from None
        track = self.tracks.tracks.get(chosen)
        if track is None:  # a provider that broke the contract
            raise ValueError(f"LLM chose {chosen!r}, which is not a track")
        return track

    async def _play_fallback(self, turn: RobotTurn, error: Exception) -> None:
        turn.error = f"{type(error).__name__}: {error}"
        self.call.event("error", turn=turn.idx, detail=turn.error)
        await self.play_track(self.tracks.fallback, turn)

    async def play_track(
        self, track: Track, turn: RobotTurn | None = None, *, interruptible: bool = True
    ) -> None:
        """One robot turn that plays `track`; then hangs up or transfers if the track says so."""
        turn = turn or RobotTurn(self.transcript.next_idx())
        turn.track = track.id
        await self.speak(
            [track.spoken_text],
            audio=track.audio,
            turn=turn,
            interruptible=interruptible and not track.uninterruptible,
            ends_call="robot_goodbye" if track.ends_call else None,
        )
        if track.transfer:  # the track announced it
            await self.transfer(track.transfer, by="track", announce=False)

    def key_actions(self) -> KeyActions:
        return TrackKeyActions(self)


class TrackKeyActions(SpeakerKeyActions):
    def __init__(self, session: LlmScriptSession) -> None:
        super().__init__(session)
        self.script = session

    async def repeat_last(self) -> None:
        """The last track again (its recording, not the TTS); a spoken turn is spoken again."""
        session = self.script
        turn = last_robot_turn(session.call)
        track = session.tracks.tracks.get(turn.track) if turn and turn.track else None
        if track is None:
            await super().repeat_last()
            return
        audio, again = track.audio, RobotTurn(session.transcript.next_idx(), track=track.id)
        session.start_speaker(lambda: session.speak([track.spoken_text], audio=audio, turn=again))
