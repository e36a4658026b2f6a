"""Asterisk's WebSocket channel (chan_websocket): Asterisk connects to the robot's port."""
