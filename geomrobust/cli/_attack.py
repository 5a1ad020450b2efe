"""``geomrobust attack``: the spatial attack of Engstrom et al. (2019) on a checkpoint.

Under ``torchrun`` (``WORLD_SIZE`` > 1) image blocks are shared out over the ranks like
``eval``'s (:mod:`geomrobust.cli._ranks`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._eval_steps import already_complete, image_inputs, partial_path
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
from geomrobust.cli._ranks import run_sharded_attack

__all__ = ["add_parser", "run"]

PRESETS = ("engstrom-mnist", "engstrom-cifar", "engstrom-imagenet")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack",
        help="the spatial attack of Engstrom et al.: random, worst-of-k and grid, per image",
        description=(
            "Attack every image inside a box of rotations (±--max-angle-deg) and shifts "
            "(±--max-shift-px in x and y independently): one uniform draw (random), k draws "
            "judged by the highest cross-entropy loss (worst-of-k), and every point of a grid "
            "(correct only if correct at all of them); also the pair consistency of two "
            "independent draws. Rotation about the centre, then the shift; draws are keyed "
            "by (seed, image index, draw), so they do not depend on the batch size, device or "
            "ranks. Writes RESULT.json (geomrobust.attack/1) with the accuracies and their "
            "95 %% intervals, and the per-image outcomes and worst parameters beside it. "
            "Presets and their sources: docs/PROTOCOLS.md."
        ),
    )
    add_model_args(p)
    add_data_args(p, folders=True)
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="published settings: engstrom-mnist and engstrom-cifar (±30°, ±3 px, grid "
        "31,5,5; cifar with --canvas-pad 16), engstrom-imagenet (±30°, ±3/28 of the size: 24 px "
        "at 224); the options below override a preset",
    )
    p.add_argument("--max-angle-deg", type=float, metavar="DEG", help="angle box ±DEG (30)")
    p.add_argument(
        "--max-shift-px", type=float, metavar="PX", help="shift box ±PX in x and in y (3)"
    )
    p.add_argument("--k", type=int, help="draws of worst-of-k (default 10)")
    p.add_argument(
        "--grid",
        metavar="ANGLES,SHIFTS_X,SHIFTS_Y",
        help="values of the exhaustive grid along each axis, evenly spaced over the box "
        "(default 31,5,5: 775 points, the identity included)",
    )
    p.add_argument(
        "--canvas-pad",
        type=int,
        metavar="PX",
        help="warp on a canvas padded by PX on every side, then crop the centre (the published "
        "CIFAR code pads by 16)",
    )
    p.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    p.add_argument(
        "--fill",
        metavar="VALUE|mean",
        help="pad with a constant in [0, 1] image space, or 'mean'; default: zeros",
    )
    add_seed(p, what="the draws")
    add_batch_size(p, default=256)
    add_forward(p)
    add_device(p, torchrun=True)
    add_threads(p, torchrun=True)
    add_out(p, metavar="RESULT.json", help="result file")
    add_force(p, what="an existing result")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from RESULT.json.partial/ (finished image blocks are "
        "reused); on a run that already finished, do nothing and exit 0",
    )
    add_progress(p)
    p.set_defaults(handler=run)


def _grid(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise UsageError(
            f"--grid must be three sizes ANGLES,SHIFTS_X,SHIFTS_Y, each >= 1; got {text!r}"
        )
    return values  # type: ignore[return-value]


def attack_config(args: argparse.Namespace):
    """The :class:`~geomrobust.robustness.AttackConfig` of the options."""
    from geomrobust.robustness import AttackConfig, EvalInputError, attack_preset

    overrides = {"seed": args.seed}
    if args.max_angle_deg is not None:
        overrides["max_angle_deg"] = args.max_angle_deg
    if args.max_shift_px is not None:
        overrides |= {"max_shift_px": args.max_shift_px, "max_shift_fraction": None}
    if args.k is not None:
        overrides["k"] = args.k
    if args.grid is not None:
        overrides["grid"] = _grid(args.grid)
    if args.canvas_pad is not None:
        overrides["canvas_pad"] = args.canvas_pad
    try:
        if args.preset:
            return attack_preset(args.preset, **overrides)
        return AttackConfig(**overrides)
    except EvalInputError as exc:
        raise UsageError(str(exc)) from None


def _plan(args: argparse.Namespace, device=None):
    from geomrobust.robustness import AttackPlan

    config = attack_config(args)
    data, loaded, device, options = image_inputs(args, device=device)
    return AttackPlan(
        loaded.model,
        data,
        config,
        options=options,
        device=device,
        record=loaded.record,
        assumptions=loaded.assumptions,
    )


def write_attack(result, out: Path) -> None:
    """Write an attack result and print its accuracies."""
    from geomrobust.robustness import write_attack_result

    write_attack_result(result, out)
    s = result.summary
    parts = []
    for mode, name in (("clean", "clean"), ("random", "random"), ("worst_of_k", "worst-of-k")):
        lo, hi = s[f"{mode}_accuracy_ci95"]
        parts.append(f"{name} {s[f'{mode}_accuracy']:.4f} [{lo:.4f}, {hi:.4f}]")
    lo, hi = s["grid_accuracy_ci95"]
    parts.append(f"grid {s['grid_accuracy']:.4f} [{lo:.4f}, {hi:.4f}]")
    print("  ".join(parts))
    print(f"pair consistency {s['pair_consistency']:.4f}  (k={s['k']}, grid {s['grid']})")
    print(f"wrote {out} ({s['n']} images)")


def run(args: argparse.Namespace) -> int:
    from geomrobust.robustness import EvalInputError, attack
    from geomrobust.robustness._distributed import launch_from_env
    from geomrobust.robustness._io import PartialStore
    from geomrobust.transforms.datasets import DatasetError

    launch = launch_from_env()
    if launch is not None:
        return run_sharded_attack(args, launch, _plan, write_attack)
    out: Path = args.out
    partial = partial_path(out)
    set_threads(args.threads)
    if already_complete(out, resume=args.resume, partial=partial):
        return 0
    check_out(out, args.force)
    config = attack_config(args)
    data, loaded, device, options = image_inputs(args)
    try:
        with progress_bar(args.progress, len(data), f"attack {config.preset or 'custom'}") as bar:
            result = attack(
                loaded.model,
                data,
                config,
                options=options,
                device=device,
                record=loaded.record,
                assumptions=loaded.assumptions,
                partial=partial,
                resume=args.resume,
                progress=bar.update,
            )
    except (EvalInputError, DatasetError):
        if partial.is_dir() and not any(partial.rglob("*.npy")):
            PartialStore(partial, {}, 0).discard()  # nothing finished: leave no trace
        raise
    write_attack(result, out)
    PartialStore(partial, {}, 0).discard()
    return 0
