"""Harness shared by tests/ and bench/ (processes, brokers, databases, checks)."""
