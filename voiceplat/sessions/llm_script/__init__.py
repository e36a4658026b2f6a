"""llm_script mode: the LLM picks one of the robot's prerecorded tracks and the track plays.

- `session.py`: `LlmScriptSession`, the call (ASR → `LLM.choose` → the track, fallback, hangup,
  transfer);
- `tracks.py`: the robot's `tracks.json` and WAVs, checked and loaded once with the robot.
"""

from voiceplat.sessions.llm_script.session import LlmScriptSession

__all__ = ["LlmScriptSession"]
