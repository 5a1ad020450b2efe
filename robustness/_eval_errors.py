"""Errors of the evaluation engine that are the caller's input, not a bug.

All derive from :class:`EvalInputError`, a ``ValueError``; the CLI turns them into
``error: ...`` and exit status 2.
"""

from __future__ import annotations

__all__ = ["EvalInputError", "IncompatibleResultsError", "ResumeError"]


class EvalInputError(ValueError):
    """Bad input to an evaluation: the message says what was wrong and how to fix it."""


class ResumeError(EvalInputError):
    """Saved partial results belong to another run (checkpoint, data, sweep or options)."""


class IncompatibleResultsError(EvalInputError):
    """Two results cannot be compared (other data, sweep or transform convention)."""
