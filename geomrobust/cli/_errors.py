"""The one place where errors become the CLI's output and exit status.

Library functions raise their own input errors (``EvalInputError``, ``CheckpointError``,
``DatasetError``, ``ReportError``), which name parameters, not flags; the command modules
raise :class:`UsageError` for bad flags. Both end as one ``error: ...`` line on stderr with
exit status 2 and no traceback (:func:`exit_status`); anything else is a bug and keeps its
traceback (exit status 1).
"""

from __future__ import annotations

import sys

__all__ = ["UsageError", "as_flags", "exit_status", "input_errors", "print_error"]


class UsageError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""


def input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's input rather than a bug (exit status 2)."""
    from geomrobust.models import CheckpointError
    from geomrobust.reports import ReportError
    from geomrobust.robustness import EvalInputError
    from geomrobust.transforms.datasets import DatasetError

    return (UsageError, EvalInputError, CheckpointError, DatasetError, ReportError)


# Library messages name parameters; on the command line the user sets flags.
_PARAMETERS_AS_FLAGS = (
    ("pass root= (CLI: --data-root DIR)", "pass --data-root DIR"),
    ("root= with download=True", "--data-root DIR with --download"),
    ("(CLI: --data-root DIR)", "(--data-root DIR)"),
    ("pass download=True", "pass --download"),
    ("download=True", "--download"),
    ("pass force=True (CLI: --force)", "pass --force"),
    ("force=True (CLI: --force)", "--force"),
    ("(CLI: --force)", "(--force)"),
    ("pass force=True", "pass --force"),
    ("pass resume=True", "pass --resume"),
    ("only epochs may grow", "only --epochs may grow"),
)


def as_flags(message: str) -> str:
    """``message`` with the library's parameter names replaced by the CLI's flags."""
    for parameter, flag in _PARAMETERS_AS_FLAGS:
        message = message.replace(parameter, flag)
    return message


def print_error(message: object) -> None:
    """``error: MESSAGE`` on stderr, on one line as the user will read it."""
    print(f"error: {as_flags(str(message))}", file=sys.stderr)


def exit_status(exc: BaseException) -> int | None:
    """Report ``exc`` if it is bad input and return 2; ``None`` for anything else."""
    if isinstance(exc, input_errors()):
        print_error(exc)
        return 2
    return None
