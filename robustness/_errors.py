"""The error type the CLI turns into ``error: ...`` and exit status 2."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""
