"""FreeSWITCH mod_audio_fork over WebSocket: `codec` (sans-I/O messages) and `channel`
(`AudioForkChannel`, the `CallChannel` adapter). Import those modules directly: this package
imports nothing, so `marks.py` and `playout_model.py` can use the codec's constants."""
