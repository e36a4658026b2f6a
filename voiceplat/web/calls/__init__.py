"""Finished calls for the web pages: a query, a page of calls, per-robot stats, from PostgreSQL or
the robots' JSON files (store.py)."""

from voiceplat.web.calls.store import (
    CallPage,
    CallQuery,
    CallStore,
    CallStoreError,
    RobotStats,
    call_store_for,
)

__all__ = ["CallPage", "CallQuery", "CallStore", "CallStoreError", "RobotStats", "call_store_for"]
