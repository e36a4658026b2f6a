"""SIPp against a robot serving SIP in a child process (tests/sip_tools.py)."""

import pytest

from tests.sip_tools import require_tool, sip_robot

__all__ = ["sip_robot"]


@pytest.fixture(autouse=True)
def _sipp_installed() -> None:
    """Every test here needs SIPp: skip (under CI=true: fail) before starting a robot."""
    require_tool("sipp")
