"""``geomrobust eval-pairs``: evaluate a transformation-pair classifier on fresh pairs.

Under ``torchrun`` the pairs are split over the ranks (:mod:`geomrobust.cli._ranks`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomrobust.cli._eval_steps import already_complete, pairs_inputs, write_pairs
from geomrobust.cli._inputs import add_data_args, add_model_args
from geomrobust.cli._options import (
    add_batch_size,
    add_device,
    add_force,
    add_forward,
    add_out,
    add_progress,
    add_seed,
    add_threads,
    check_out,
    progress_bar,
    set_threads,
)
from geomrobust.cli._ranks import run_sharded_pairs

__all__ = ["add_parser", "run"]

log = logging.getLogger("geomrobust")


def add_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "eval-pairs",
        help="evaluate a transformation-pair classifier on fresh pairs",
        description=(
            "Draw --pairs fresh transformation pairs from a split (seeded, reproducible) and "
            "report the pair classifier's accuracy with a 95 % Wilson interval, per-class "
            "recall and the confusion matrix (schema geomrobust.pairs/1)."
        ),
    )
    add_model_args(q)
    add_data_args(q)
    q.add_argument(
        "--pairs",
        type=int,
        default=10_000,
        help="number of pairs, one forward pass each (default: 10000; above 10,000,000 "
        "needs --yes)",
    )
    q.add_argument(
        "--yes", action="store_true", help="run a --pairs count above 10,000,000 (hours of work)"
    )
    add_seed(q, what="the pairs")
    q.add_argument("--crop", action="store_true", help="crop pairs free of rotation padding")
    add_batch_size(q, default=256, what="pairs")
    add_forward(q)
    add_device(q, torchrun=True)
    add_threads(q, torchrun=True)
    add_out(q, metavar="RESULT.json", help="result file")
    add_force(q, what="an existing result")
    q.add_argument(
        "--resume",
        action="store_true",
        help="on a run that already finished, do nothing and exit 0 (a rerun after a crash)",
    )
    add_progress(q)
    q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import evaluate_pairs
    from geomrobust.robustness._distributed import launch_from_env

    launch = launch_from_env()
    if launch is not None:
        return run_sharded_pairs(args, launch)
    out: Path = args.out
    set_threads(args.threads)
    if already_complete(out, resume=args.resume):
        return 0
    check_out(out, args.force)
    data, loaded, options = pairs_inputs(args)
    with progress_bar(args.progress, args.pairs, "pairs") as bar:
        result = evaluate_pairs(loaded.model, data, progress=bar.update, **options)
    write_pairs(result, out)
    return 0
