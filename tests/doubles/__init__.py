"""Test doubles of the platform's interfaces, shared by the tests."""
