"""Twilio-style Media Streams (JSON text frames, base64 mu-law 8 kHz)."""
