"""Simulated PBX sides of the streaming ingresses: `voiceplat call <scheme>://...`.

Each protocol is a module here exposing `make_peer(url, call) -> (PeerCodec, Transport)` (the
interface: `peers/base.py`); `SCHEMES` maps URL schemes to those modules, imported on first use.
Run calls with `peers.runner.run_peer_call` / `run_peer_calls`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

SCHEMES = {
    "audiosocket": "voiceplat.simulator.peers.audiosocket",
    "twilio+ws": "voiceplat.simulator.peers.twilio",
    "twilio+wss": "voiceplat.simulator.peers.twilio",
    "asterisk+ws": "voiceplat.simulator.peers.asterisk_ws",
    "asterisk+wss": "voiceplat.simulator.peers.asterisk_ws",
    "audio_stream+ws": "voiceplat.simulator.peers.audio_stream",
    "audio_stream+wss": "voiceplat.simulator.peers.audio_stream",
}


def peer_scheme(url: str) -> str | None:
    """The URL's scheme when a peer module handles it, else None."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    return scheme if sep and scheme in SCHEMES else None


def peer_module(url: str) -> ModuleType:
    """The module playing `url`'s PBX side; ValueError when no peer handles the scheme."""
    scheme = peer_scheme(url)
    if scheme is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"{url!r}: not a simulated PBX URL ({known})")
    try:
        return importlib.import_module(SCHEMES[scheme])
    except ModuleNotFoundError as exc:
        if exc.name == SCHEMES[scheme]:
            raise ValueError(f"{scheme}:// is not available in this build") from None
        raise
