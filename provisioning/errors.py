"""``cs-admin``'s exit codes and how a command stops short: bad usage, or central said no."""

from __future__ import annotations

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class UsageError(ValueError):
    """The command line cannot work as given (exit 2)."""


class RefusedError(Exception):
    """Central answered, and said no (exit 1)."""
