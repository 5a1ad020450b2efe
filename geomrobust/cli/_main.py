"""The ``geomrobust`` console script: one program, one subcommand per job.

Bad input ends with a one-line ``error: ...`` on stderr and exit status 2 (no traceback;
:mod:`geomrobust.cli._errors`). Anything else that reaches the entry point is reported as
``error: unexpected <Type>: <message>`` with a hint to rerun with ``-v``, which prints the
traceback, and exits 1: a user never sees a traceback unless they ask for one. Python warnings
(e.g. a data file that is not byte-identical to the official release, or no C++ compiler for
the deformable kernel) are printed as ``warning: <message>`` lines too; ``-v`` adds their
category and where they were raised.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from collections.abc import Sequence

from geomrobust import __version__
from geomrobust.cli import (
    _attack,
    _compare,
    _demo,
    _errors,
    _eval,
    _eval_pairs,
    _make_dataset,
    _models,
    _offsets,
    _report,
    _train,
    _train_pairs,
)

__all__ = ["build_parser", "main"]

_COMMANDS = (
    _demo,
    _eval,
    _eval_pairs,
    _attack,
    _compare,
    _make_dataset,
    _models,
    _offsets,
    _report,
    _train,
    _train_pairs,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geomrobust",
        description=(
            "Geometric-robustness evaluation of image classifiers: how accuracy holds up when "
            "inputs are scaled, rotated and shifted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"geomrobust {__version__}")
    verbose = "log debug messages to stderr, and print the traceback of a failure"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # -v also after the command's name
        command_parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose
        )
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None, *, verbose=False):
    """A Python warning as one ``warning: ...`` log line (with ``-v``: its category and the
    place that raised it), like the suite's own warnings, instead of Python's two-line form
    with a source excerpt."""
    del file, line
    where = f" ({category.__name__} at {filename}:{lineno})" if verbose else ""
    logging.getLogger("geomrobust").warning("warning: %s%s", message, where)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _errors.FlagsFilter) for f in handler.filters):
            handler.addFilter(_errors.FlagsFilter())
    try:
        with warnings.catch_warnings():  # restores Python's own display on return
            warnings.showwarning = functools.partial(_show_warning, verbose=args.verbose)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        _errors.print_error("interrupted")
        return 130
    except Exception as exc:
        status = _errors.exit_status(exc)
        if status is None:
            status = _errors.unexpected(exc, verbose=args.verbose)
        return status
