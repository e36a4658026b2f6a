"""Integration fixtures: real storage servers (tests/storage_servers.py), started on first use."""

from tests.storage_servers import storage_servers, stores

__all__ = ["storage_servers", "stores"]
