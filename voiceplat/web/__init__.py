"""The web side (issue 13): one FastAPI service for robot authors, analysts and operators.

Pages (talk to a robot, calls, a call, robots, live) and the HTTP API behind them; it reads call
records from PostgreSQL or the robots' JSON files and never sits on a call's audio path: the talk
page's browser streams straight to the robot's own port (`telephony/ingress/web.py`).
"""
