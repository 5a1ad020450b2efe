"""The one place where errors become the CLI's output and exit status.

Library functions raise their own input errors (``EvalInputError``, ``CheckpointError``,
``DatasetError``, ``ReportError``), which name parameters, not flags; the command modules
raise :class:`UsageError` for bad flags. Both end as one ``error: ...`` line on stderr with
exit status 2 and no traceback (:func:`exit_status`). A full disk or a file that cannot be
written is exit status 1 with one line naming the file; anything else is reported by
:func:`unexpected` (exit status 1, the traceback only with ``-v``).
"""

from __future__ import annotations

import ast
import errno
import json
import logging
import re
import sys
import traceback

__all__ = [
    "FlagsFilter",
    "UsageError",
    "as_flags",
    "exit_status",
    "input_errors",
    "print_error",
    "unexpected",
]


class UsageError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it.

    A library message passed on as a usage error is worded for the command line
    (:func:`as_flags`)."""

    def __init__(self, message: object) -> None:
        super().__init__(as_flags(str(message)))


def input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's input rather than a bug (exit status 2)."""
    from geomrobust.models import CheckpointError
    from geomrobust.reports import ReportError
    from geomrobust.robustness import EvalInputError
    from geomrobust.transforms.datasets import DatasetError

    return (UsageError, EvalInputError, CheckpointError, DatasetError, ReportError)


def _model_args_flag(match: re.Match[str]) -> str:
    """``model_args={'num_classes': 10}`` as ``--model-args '{"num_classes": 10}'``."""
    try:
        value = json.dumps(ast.literal_eval(match.group(1)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = match.group(1)
    return f"--model-args '{value}'"


# Library messages name parameters; on the command line the user sets flags. Each pattern is
# a phrase the library writes (transforms.datasets, models, robustness, reports).
_PARAMETERS_AS_FLAGS = (
    (r"pass as root= the folder", "pass with --data-root the folder"),
    (r"\broot=DIR\b", "--data-root DIR"),
    (r"\bdata_root= ", "--data-root "),
    (r"\bdownload=True\b", "--download"),
    (r"\bforce=True\b", "--force"),
    (r"\bresume=True\b", "--resume"),
    (r"\bwith resume=False\b", "without --resume"),
    (r"pass model='?([^'\s;,]+)'?", r"pass --model \1"),
    (r"\bmodel_args=(\{[^{}]*\})", _model_args_flag),
    (r"\bfrom model_args\b", "from --model-args"),
    (r"pass mean= and std=", "pass --mean and --std"),
    (r"\bnum_pairs must", "--pairs must"),
    (r"\bchoose another out\b", "choose another --out"),
    (r"^out (\S+) exists", r"--out \1 exists"),
    (r"\bonly epochs may grow", "only --epochs may grow"),
    (r"\bclass_map=FILE\b", "--class-map FILE"),
    (r"\bskip_unreadable=True\b", "--skip-unreadable"),
    (r"\bgrey=True\b", "--grey"),
    (r"\bcrop=\(H, W\) \(and resize=N\)", "--crop H,W (and --resize N)"),
    (r"\(resize >= (\d+)\)", r"(--resize >= \1)"),
    (r"\bmax_angle_deg\b", "--max-angle-deg"),
    (r"\bmax_shift_px\b", "--max-shift-px"),
    (r"\bcanvas_pad must", "--canvas-pad must"),
    (r"^k must be", "--k must be"),
)


def as_flags(message: str) -> str:
    """``message`` with the library's parameter names replaced by the CLI's flags."""
    for pattern, flag in _PARAMETERS_AS_FLAGS:
        message = re.sub(pattern, flag, message)
    return message


class FlagsFilter(logging.Filter):
    """Log records as the user reads them: the library's parameter names as flags."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = as_flags(record.getMessage()), None
        return True


def print_error(message: object) -> None:
    """``error: MESSAGE`` on stderr, on one line as the user will read it."""
    print(f"error: {as_flags(str(message))}", file=sys.stderr)


def exit_status(exc: BaseException) -> int | None:
    """Report ``exc`` if it is bad input and return 2; ``None`` for anything else."""
    if isinstance(exc, input_errors()):
        print_error(exc)
        return 2
    if isinstance(exc, PermissionError):
        what = f" {exc.filename}" if exc.filename else ""
        print_error(f"cannot access{what}: permission denied; check the file's permissions")
        return 2
    return None


def unexpected(exc: BaseException, *, verbose: bool) -> int:
    """Report a failure that is not bad input: one line (two with the ``-v`` hint); 1.

    A full disk or another OS error while writing names the file; anything else is
    ``unexpected <Type>: <message>``. ``verbose`` prints the traceback first.
    """
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        print_error(f"no space left on the device{where}; free some space and rerun")
        if not verbose:
            print("rerun with -v for the traceback", file=sys.stderr)
        return 1
    message = " ".join(str(exc).split())
    if len(message) > 300:
        message = message[:300] + "..."
    print_error(f"unexpected {type(exc).__name__}: {message}")
    if not verbose:
        print("rerun with -v for the traceback", file=sys.stderr)
    return 1
