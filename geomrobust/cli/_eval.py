"""``geomrobust eval``: evaluate a checkpoint on every point of a sweep.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the run is sharded over the ranks
(:mod:`geomrobust.cli._ranks`, docs/DISTRIBUTED.md); the inputs are read and the result is
written by the same functions as in one process.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._eval_steps import already_complete, eval_inputs, partial_path, write_eval
from geomrobust.cli._inputs import add_data_args, add_model_args
from geomrobust.cli._options import (
    add_batch_size,
    add_device,
    add_force,
    add_forward,
    add_out,
    add_progress,
    add_threads,
    check_out,
    progress_bar,
    set_threads,
)
from geomrobust.cli._ranks import run_sharded_eval

__all__ = ["add_parser", "run"]


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
            "space, then normalised. An interrupted run continues with --resume. Your own "
            "images: --dataset imagefolder --data-root DIR (DIR/<class>/<image>), decoded "
            "once per run in --workers processes, with --resize/--crop as in training."
        ),
    )
    add_model_args(p)
    add_data_args(p, folders=True)
    p.add_argument(
        "--sweep",
        help="preset: scale, rotation, translation, scale-rotation; the CIFAR-10-P sequences "
        "cifar-p-rotate, cifar-p-scale, cifar-p-translate; diagonal-shift-1px (Azulay & "
        "Weiss); see docs/PROTOCOLS.md. A sweep that is one ordered sequence also gets its "
        "flip probability",
    )
    p.add_argument("--scales", help="custom scales, 'start:stop:step' or 'a,b,c'")
    p.add_argument("--angles", help="custom angles in degrees, 'start:stop:step' or 'a,b,c'")
    p.add_argument("--shifts", help="custom shifts in px: '-4:4:2' (x and y cross) or 'x,y;x,y'")
    p.add_argument(
        "--shifts-x",
        metavar="RANGE",
        help="x shifts in px, 'start:stop:step' or 'a,b,c'; with --shifts-y, --angles and "
        "--scales the full product grid, ordered scales, angles, x, y (outermost first)",
    )
    p.add_argument("--shifts-y", metavar="RANGE", help="y shifts in px (y down), as --shifts-x")
    p.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    p.add_argument(
        "--fill",
        metavar="VALUE|mean",
        help="pad with a constant in [0, 1] image space (one value or one per channel), or "
        "'mean': the model's normalisation mean, which is what warping after normalisation "
        "amounts to (the published scaled-MNIST protocol); default: zeros",
    )
    add_batch_size(p, default=256)
    add_forward(p)
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


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import EvalInputError, evaluate, work_rows
    from geomrobust.robustness._distributed import launch_from_env
    from geomrobust.robustness._io import PartialStore
    from geomrobust.transforms.datasets import DatasetError

    launch = launch_from_env()
    if launch is not None:
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
    except (EvalInputError, DatasetError):  # found while running: a bad model output or file
        if partial.is_dir() and not any(partial.rglob("*.npy")):
            PartialStore(partial, {}, 0).discard()  # nothing finished: leave no trace
        raise
    write_eval(result, out)
    PartialStore(partial, {}, 0).discard()
    return 0
