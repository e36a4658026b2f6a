"""Call recordings made by the robot itself: a stereo tape of each call (caller left, robot right,
8 kHz, on one clock), written after the call, deleted by age. See `call.py` for how a session
uses it."""
