"""The simulated caller: FreeSWITCH's side of mod_audio_fork, for tests, benchmarks and authors."""

from voiceplat.simulator.caller import run_call
from voiceplat.simulator.multi import run_calls
from voiceplat.simulator.report import CallResult, MultiResult
from voiceplat.simulator.script import BargeIn, Pause, Say, Step, WaitQuiet

__all__ = [
    "BargeIn",
    "CallResult",
    "MultiResult",
    "Pause",
    "Say",
    "Step",
    "WaitQuiet",
    "run_call",
    "run_calls",
]
