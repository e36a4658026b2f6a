"""The fuzz tests' hypothesis settings: `ci` (the suite's run, bounded) and `long` (the benchmark).

Each test takes the active profile as a decorator (`@FUZZ`) rather than `settings.load_profile`:
loading a profile would change every other hypothesis test of the suite run in the same process.
`VOICEPLAT_FUZZ_PROFILE=long` (benchmarks/fuzz.py sets it before importing the tests) picks the
long one, `VOICEPLAT_FUZZ_EXAMPLES` its examples per property.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "VOICEPLAT_FUZZ_PROFILE"
EXAMPLES_VARIABLE = "VOICEPLAT_FUZZ_EXAMPLES"

settings.register_profile(
    "fuzz-ci",
    max_examples=200,
    # Two shared cores: a slow example is the machine, not a finding.
    deadline=None,
    # Nothing written into the checkout; a failure prints the example and how to reproduce it.
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-long",
    parent=settings.get_profile("fuzz-ci"),
    max_examples=int(os.environ.get(EXAMPLES_VARIABLE) or 5000),
)

PROFILES = {"ci": "fuzz-ci", "long": "fuzz-long"}


def active() -> settings:
    name = os.environ.get(PROFILE_VARIABLE, "ci")
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r}: known profiles are {', '.join(PROFILES)}")
    return settings.get_profile(PROFILES[name])


FUZZ = active()
"""The decorator every fuzz test carries."""


def scaled(fraction: float) -> settings:
    """The active profile with a fraction of its examples, for the costly properties (a whole
    robot folder loaded per example)."""
    return settings(FUZZ, max_examples=max(10, int(FUZZ.max_examples * fraction)))
