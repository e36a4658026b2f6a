"""Fuzz tests: hypothesis profiles live in profiles.py (imported here so a bad
VOICEPLAT_FUZZ_PROFILE fails at collection with its message)."""

from tests.fuzz import profiles  # noqa: F401
