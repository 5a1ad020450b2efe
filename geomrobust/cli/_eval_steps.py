"""The steps ``eval`` and ``eval-pairs`` share between one process and the torchrun rank
jobs (:mod:`geomrobust.cli._ranks`): checked inputs, the partial-results folder, writing
and printing the result, and ``--resume`` on a finished run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._inputs import load_model_and_data, preprocess_from_args
from geomrobust.cli._options import floats, forward_options

__all__ = [
    "already_complete",
    "eval_inputs",
    "image_inputs",
    "pairs_inputs",
    "partial_path",
    "write_eval",
    "write_pairs",
]

log = logging.getLogger("geomrobust")


def already_complete(out: Path, *, resume: bool, partial: Path | None = None) -> bool:
    """``--resume`` on a run whose result exists (and has no partial work left): say so.

    A job script that reruns a command with ``--resume`` after a crash then succeeds
    whether or not the crash came before the result was written.
    """
    if not resume or not out.is_file() or (partial is not None and partial.exists()):
        return False
    print(f"{out} is already complete; nothing to resume (pass --force to run it again)")
    return True


_GRID_FLAGS = ("scales", "angles", "shifts", "shifts_x", "shifts_y")


def _sweep(args: argparse.Namespace):
    from geomrobust.transforms import (
        get_sweep,
        make_sweep,
        parse_range,
        parse_shifts,
        product_shifts,
    )

    custom = any(getattr(args, k, None) for k in _GRID_FLAGS)
    if args.sweep and custom:
        raise UsageError("pass either --sweep or --scales/--angles/--shifts(-x/-y), not both")
    if not args.sweep and not custom:
        raise UsageError(
            "pass --sweep S (scale, rotation, translation, scale-rotation, ...) or a custom "
            "grid with --scales/--angles/--shifts or --shifts-x/--shifts-y"
        )
    xs, ys = getattr(args, "shifts_x", None), getattr(args, "shifts_y", None)
    if args.shifts and (xs or ys):
        raise UsageError(
            "pass either --shifts (a cross, or x,y pairs) or --shifts-x/--shifts-y (their "
            "product grid), not both"
        )
    try:
        if args.sweep:
            return get_sweep(args.sweep)
        if xs or ys:
            shifts = product_shifts(
                parse_range(xs, name="--shifts-x") if xs else (0.0,),
                parse_range(ys, name="--shifts-y") if ys else (0.0,),
            )
        elif args.shifts:
            shifts = parse_shifts(args.shifts, name="--shifts")
        else:
            shifts = ((0.0, 0.0),)
        return make_sweep(
            scales=parse_range(args.scales, name="--scales") if args.scales else (1.0,),
            angles=parse_range(args.angles, name="--angles") if args.angles else (0.0,),
            shifts=shifts,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def eval_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval``: ``(sweep, data, loaded, device, options)``."""
    sweep = _sweep(args)
    return (sweep, *image_inputs(args, device=device))


def image_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The model, data and options of a command on images (``eval``, ``attack``):
    ``(data, loaded, device, options)``."""
    from geomrobust.robustness import EvalOptions
    from geomrobust.transforms.datasets import default_workers

    if args.fill is not None and args.fill.strip().lower() != "mean":
        fill = floats(args.fill, "--fill")
    else:
        fill = args.fill
    preprocess = preprocess_from_args(args)
    workers = args.workers
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be >= 0; got {workers}")
    data, loaded, device = load_model_and_data(args, device=device)
    if workers is None:
        workers = default_workers() if data.streamed else 0
    if loaded.num_inputs == 2:
        raise UsageError(
            f"{args.checkpoint} is a pair classifier ({loaded.record.name}); evaluate it with "
            "'geomrobust eval-pairs'"
        )
    options = EvalOptions(
        mean=loaded.record.mean,
        std=loaded.record.std,
        interpolation=args.interpolation,
        fill=fill,
        batch_size=args.batch_size,
        preprocess=preprocess,
        workers=workers,
        **forward_options(args),
    )
    return data, loaded, device, options


def partial_path(out: Path) -> Path:
    """``RESULT.json.partial``: where finished work waits for ``--resume``."""
    return out.with_name(out.name + ".partial")


def write_eval(result, out: Path) -> None:
    """Write an eval result and its predictions, and print the summary."""
    from geomrobust.robustness import write_result

    write_result(result, out)
    s = result.summary
    worst = s.worst_point.label()
    print(
        f"clean {s.clean_accuracy:.4f}  mean {s.mean_accuracy:.4f}  worst {s.worst_accuracy:.4f} "
        f"({worst})  all-points {s.all_points_accuracy:.4f}  consistency {s.consistency:.4f}"
    )
    print(f"wrote {out} ({len(result.points)} points × {result.data.n} images)")


MAX_PAIRS_WITHOUT_YES = 10_000_000
"""``eval-pairs --pairs`` above this needs ``--yes``: such a run takes hours."""


def pairs_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval-pairs``: ``(data, loaded, options)``, where ``options``
    are the keyword arguments of :func:`geomrobust.robustness.evaluate_pairs` after the
    model and data."""
    if args.pairs < 1:
        raise UsageError(f"--pairs must be >= 1; got {args.pairs}")
    if args.pairs > MAX_PAIRS_WITHOUT_YES and not args.yes:
        raise UsageError(
            f"--pairs {args.pairs:,} means {args.pairs:,} forward passes of two images each, "
            f"hours of work or more; above {MAX_PAIRS_WITHOUT_YES:,} pairs pass --yes to run "
            "it anyway"
        )
    from geomrobust.robustness import ForwardOptions

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
        "forward": ForwardOptions(**forward_options(args)),
    }
    return data, loaded, options


def write_pairs(result, out: Path) -> None:
    """Write a pair result and its predictions, and print the accuracy."""
    from geomrobust.robustness import write_pair_result

    write_pair_result(result, out)
    lo, hi = result.ci95
    print(f"pair accuracy {result.accuracy:.4f} [{lo:.4f}, {hi:.4f}] on {result.n} pairs")
    print(f"wrote {out}")


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
