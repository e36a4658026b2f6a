"""Realtime mode (session.py): the call through a speech-to-speech service, in parts it owns."""

from voiceplat.sessions.realtime.session import RealtimeSession

__all__ = ["RealtimeSession"]
