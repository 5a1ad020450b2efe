"""``geomrobust eval``: evaluate a checkpoint on every point of a sweep.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is sharded over the ranks
(:mod:`geomrobust.cli._ranks`, docs/DISTRIBUTED.md); the inputs are read and the result is
written by the same functions as in one process.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._inputs import add_data_args, add_model_args, load_model_and_data
from geomrobust.cli._options import (
    add_batch_size,
    add_device,
    add_force,
    add_out,
    add_progress,
    add_threads,
    check_out,
    floats,
    progress_bar,
    set_threads,
)

__all__ = ["add_parser", "already_complete", "eval_inputs", "partial_path", "write_eval"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint under a scale / rotation / translation sweep",
        description=(
            "Evaluate a classifier on every point of a sweep: per point n, correct, accuracy "
            "with a 95 % Wilson interval, confusion matrix, per-class accuracy and the share "
            "of predictions that change; and the summary (clean, mean, worst and all-points "
            "accuracy, consistency, relative robustness). Writes RESULT.json and the per-image "
            "predictions beside it (RESULT.predictions.npz). Images are warped in [0, 1] "
            "space, then normalised. An interrupted run continues with --resume."
        ),
    )
    add_model_args(p)
    add_data_args(p)
    p.add_argument("--sweep", help="preset: scale, rotation, translation, scale-rotation")
    p.add_argument("--scales", help="custom scales, 'start:stop:step' or 'a,b,c'")
    p.add_argument("--angles", help="custom angles in degrees, 'start:stop:step' or 'a,b,c'")
    p.add_argument("--shifts", help="custom shifts in px: '-4:4:2' (x and y cross) or 'x,y;x,y'")
    p.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    p.add_argument(
        "--fill",
        metavar="VALUE|mean",
        help="pad with a constant in [0, 1] image space (one value or one per channel), or "
        "'mean': the model's normalisation mean, which is what warping after normalisation "
        "amounts to (the published scaled-MNIST protocol); default: zeros",
    )
    add_batch_size(p, default=256)
    add_device(p, torchrun=True)
    add_threads(p, torchrun=True)
    add_out(p, metavar="RESULT.json", help="result file")
    add_force(p, what="an existing result")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from RESULT.json.partial/ (finished points are "
        "reused); on a run that already finished, do nothing and exit 0",
    )
    add_progress(p)
    p.set_defaults(handler=run)


def already_complete(out: Path, *, resume: bool, partial: Path | None = None) -> bool:
    """``--resume`` on a run whose result exists (and has no partial work left): say so.

    A job script that reruns a command with ``--resume`` after a crash then succeeds
    whether or not the crash came before the result was written.
    """
    if not resume or not out.is_file() or (partial is not None and partial.exists()):
        return False
    print(f"{out} is already complete; nothing to resume (pass --force to run it again)")
    return True


def _sweep(args: argparse.Namespace):
    from geomrobust.transforms import get_sweep, make_sweep, parse_range, parse_shifts

    custom = any(getattr(args, k) for k in ("scales", "angles", "shifts"))
    if args.sweep and custom:
        raise UsageError("pass either --sweep or --scales/--angles/--shifts, not both")
    if not args.sweep and not custom:
        raise UsageError(
            "pass --sweep S (scale, rotation, translation, scale-rotation) or a custom grid "
            "with --scales/--angles/--shifts"
        )
    try:
        if args.sweep:
            return get_sweep(args.sweep)
        return make_sweep(
            scales=parse_range(args.scales, name="--scales") if args.scales else (1.0,),
            angles=parse_range(args.angles, name="--angles") if args.angles else (0.0,),
            shifts=parse_shifts(args.shifts, name="--shifts") if args.shifts else ((0.0, 0.0),),
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def eval_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval``: ``(sweep, data, loaded, device, options)``."""
    from geomrobust.robustness import EvalOptions

    sweep = _sweep(args)
    if args.fill is not None and args.fill.strip().lower() != "mean":
        fill = floats(args.fill, "--fill")
    else:
        fill = args.fill
    data, loaded, device = load_model_and_data(args, device=device)
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
    )
    return sweep, data, loaded, device, options


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


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import EvalInputError, evaluate, work_rows
    from geomrobust.robustness._distributed import launch_from_env
    from geomrobust.robustness._io import PartialStore

    launch = launch_from_env()
    if launch is not None:
        from geomrobust.cli._ranks import run_sharded_eval

        return run_sharded_eval(args, launch)
    out: Path = args.out
    partial = partial_path(out)
    set_threads(args.threads)
    if already_complete(out, resume=args.resume, partial=partial):
        return 0
    check_out(out, args.force)
    sweep, data, loaded, device, options = eval_inputs(args)
    try:
        rows, _ = work_rows(sweep)
        with progress_bar(args.progress, len(rows) * len(data), f"eval {sweep.name}") as bar:
            result = evaluate(
                loaded.model,
                data,
                sweep,
                options=options,
                device=device,
                record=loaded.record,
                assumptions=loaded.assumptions,
                partial=partial,
                resume=args.resume,
                progress=bar.update,
            )
    except EvalInputError:
        if partial.is_dir() and not any(partial.rglob("*.npy")):
            PartialStore(partial, {}, 0).discard()  # nothing finished: leave no trace
        raise
    write_eval(result, out)
    PartialStore(partial, {}, 0).discard()
    return 0
