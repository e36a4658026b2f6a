"""SIPp against a robot serving SIP in a child process (tests/sip_tools.py)."""

from tests.sip_tools import sip_robot

__all__ = ["sip_robot"]
