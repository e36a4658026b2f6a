"""Ingress adapters: each carries calls of one protocol and gives every call to a session as a
`telephony.channel.CallChannel` (audio_fork: FreeSWITCH mod_audio_fork over WebSocket)."""
