"""``geomrobust eval-pairs``: evaluate a transformation-pair classifier on fresh pairs.

Under ``torchrun`` the pairs are split over the ranks (:mod:`geomrobust.cli._ranks`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._eval import already_complete
from geomrobust.cli._inputs import add_data_args, add_model_args, load_model_and_data
from geomrobust.cli._options import (
    add_batch_size,
    add_device,
    add_force,
    add_out,
    add_progress,
    add_seed,
    add_threads,
    check_out,
    progress_bar,
    set_threads,
)

__all__ = ["add_parser", "pairs_inputs", "write_pairs"]

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
    q.add_argument("--pairs", type=int, default=10_000, help="number of pairs (default: 10000)")
    add_seed(q, what="the pairs")
    q.add_argument("--crop", action="store_true", help="crop pairs free of rotation padding")
    add_batch_size(q, default=256, what="pairs")
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


def pairs_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval-pairs``: ``(data, loaded, options)``, where ``options``
    are the keyword arguments of :func:`geomrobust.robustness.evaluate_pairs` after the
    model and data."""
    if args.pairs < 1:
        raise UsageError(f"--pairs must be >= 1; got {args.pairs}")
    data, loaded, _ = load_model_and_data(args, pairs=True, device=device)
    if loaded.num_inputs == 1:
        raise UsageError(
            f"{args.checkpoint} is an image classifier ({loaded.record.name}), not a "
            "transformation-pair classifier; evaluate it with 'geomrobust eval'"
        )
    k = getattr(loaded.model, "num_classes", None)
    options = {
        "num_pairs": args.pairs,
        "seed": args.seed,
        "config": _pair_config(loaded.training, k, crop=args.crop) if k in (7, 8) else None,
        "mean": loaded.record.mean,
        "std": loaded.record.std,
        "batch_size": args.batch_size,
        "record": loaded.record,
    }
    return data, loaded, options


def write_pairs(result, out: Path) -> None:
    """Write a pair result and its predictions, and print the accuracy."""
    from geomrobust.robustness import write_pair_result

    write_pair_result(result, out)
    lo, hi = result.ci95
    print(f"pair accuracy {result.accuracy:.4f} [{lo:.4f}, {hi:.4f}] on {result.n} pairs")
    print(f"wrote {out}")


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import evaluate_pairs
    from geomrobust.robustness._distributed import launch_from_env

    launch = launch_from_env()
    if launch is not None:
        from geomrobust.cli._ranks import run_sharded_pairs

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


def _pair_config(training, num_classes: int, *, crop: bool):
    """The pair magnitudes the checkpoint was trained with (``training["pair_config"]``), else
    the defaults; ``--crop`` turns cropping on."""
    from geomrobust.transforms.datasets import PairConfig

    saved = training.get("pair_config") if hasattr(training, "get") else None
    if isinstance(saved, dict):
        try:
            return PairConfig(
                num_classes=num_classes,
                angle_deg=tuple(tuple(i) for i in saved["angle_deg"]),
                scale=tuple(tuple(i) for i in saved["scale"]),
                shift_fraction=tuple(saved["shift_fraction"]),
                crop=bool(saved.get("crop", False)) or crop,
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the checkpoint's pair_config (%s); using the defaults", exc)
    return PairConfig(num_classes=num_classes, crop=crop)
