"""Benchmark scripts (run as files: `python benchmarks/<script>.py`) and the modules they share."""
