"""Benchmarks: speed and read rates measured on this machine, never in timed tests."""
