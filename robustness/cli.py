"""The ``geomrobust`` console script: one program, one subcommand per job.

Bad input ends with a one-line ``error: ...`` on stderr and exit status 2 (no traceback);
an unexpected failure exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from robustness import __version__
from robustness._demo import add_demo_parser
from robustness._errors import UsageError
from robustness._eval_cmd import add_eval_parsers
from robustness._make_dataset import add_make_dataset_parser
from robustness._models_cmd import add_models_parser
from robustness._offsets_cmd import add_offsets_parser
from robustness._report_cmd import add_report_parser
from robustness._train_cmd import add_train_parsers

__all__ = ["build_parser", "main"]

log = logging.getLogger("geomrobust")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geomrobust",
        description=(
            "Geometric-robustness evaluation of image classifiers: how accuracy holds up when "
            "inputs are scaled, rotated and shifted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"geomrobust {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_demo_parser(sub)
    add_eval_parsers(sub)
    add_make_dataset_parser(sub)
    add_models_parser(sub)
    add_offsets_parser(sub)
    add_report_parser(sub)
    add_train_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
