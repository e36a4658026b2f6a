"""The embedded SIP endpoint: a robot answers SIP calls itself, on PJSIP (pjsua2).

PJSIP runs in threads of its own. All pjsua2 calls and callbacks happen in one thread
(`pj_thread.PjThread`), except the media clock's frame callbacks (`media.py`), which only touch
thread-safe buffers. Frames and events cross into asyncio in batches (`media.LoopInbox`).
"""
