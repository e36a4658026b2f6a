"""Asterisk AudioSocket (TCP): the `AudioSocket()` application and the `AudioSocket/` channel."""
