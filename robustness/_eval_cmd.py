"""``geomrobust eval``, ``eval-pairs`` and ``compare``: evaluate checkpoints, compare results.

Register them with :func:`add_eval_parsers`. Bad input (a missing or corrupt checkpoint, a
checkpoint that disagrees with the data, an invalid sweep, a missing data root, an existing
output without ``--force``) raises :class:`~robustness._errors.UsageError`, which the CLI
prints as one ``error: ...`` line with exit status 2.

Under ``torchrun`` (``WORLD_SIZE`` > 1) ``eval`` and ``eval-pairs`` run sharded over the ranks
(:mod:`robustness._distributed`, docs/DISTRIBUTED.md); the inputs are read and the result is
written by the same functions as in one process.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from robustness._errors import UsageError

__all__ = [
    "add_eval_parsers",
    "eval_inputs",
    "pairs_inputs",
    "partial_path",
    "resolve_device",
    "set_threads",
    "write_eval",
    "write_pairs",
]

log = logging.getLogger("geomrobust")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint file (.safetensors or .pt state dict) or ref:NAME (models/refs/)",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="architecture for a checkpoint without metadata: a registry name (see "
        "'geomrobust models') or package.module:factory",
    )
    p.add_argument(
        "--dataset", required=True, help="dataset: digits, mnist, fashion-mnist, cifar10"
    )
    p.add_argument("--data-root", type=Path, help="folder with the dataset's files")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument(
        "--mean",
        metavar="M",
        help="normalisation mean, one value or one per channel 'a,b,c' (overrides the "
        "checkpoint's; default: the checkpoint's, else none: images in [0, 1])",
    )
    p.add_argument("--std", metavar="S", help="normalisation std, as --mean (give both)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if available, else cpu), cpu, cuda or cuda:N (default: auto); under "
        "torchrun rank r uses cuda:LOCAL_RANK or cpu",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads (torch.set_num_threads); default: torch's, or under torchrun the "
        "node's cores divided among its ranks",
    )
    p.add_argument("--out", type=Path, required=True, metavar="RESULT.json", help="result file")
    p.add_argument("--force", action="store_true", help="overwrite an existing result")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar on stderr (default: on)",
    )


def add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``eval``, ``eval-pairs`` and ``compare`` on a subparsers object."""
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint under a scale / rotation / translation sweep",
        description=(
            "Evaluate a classifier on every point of a sweep: per point n, correct, accuracy "
            "with a 95%% Wilson interval, confusion matrix, per-class accuracy and the share "
            "of predictions that change; and the summary (clean, mean, worst and all-points "
            "accuracy, consistency, relative robustness). Writes RESULT.json and the per-image "
            "predictions beside it (RESULT.predictions.npz). Images are warped in [0, 1] "
            "space, then normalised. An interrupted run continues with --resume."
        ),
    )
    _add_model_args(p)
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
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from RESULT.json.partial/ (finished points are reused)",
    )
    p.set_defaults(handler=run_eval)

    q = sub.add_parser(
        "eval-pairs",
        help="evaluate a transformation-pair classifier on fresh pairs",
        description=(
            "Draw --pairs fresh transformation pairs from a split (seeded, reproducible) and "
            "report the pair classifier's accuracy with a 95%% Wilson interval, per-class "
            "recall and the confusion matrix (schema geomrobust.pairs/1)."
        ),
    )
    _add_model_args(q)
    q.add_argument("--pairs", type=int, default=10_000, help="number of pairs (default: 10000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the pairs (default: 0)")
    q.add_argument("--crop", action="store_true", help="crop pairs free of rotation padding")
    q.set_defaults(handler=run_eval_pairs)

    c = sub.add_parser(
        "compare",
        help="compare two eval results on the same data and sweep",
        description=(
            "Per-point accuracy differences (A - B) with exact McNemar p-values, and a paired "
            "bootstrap 95%% interval of the mean-accuracy difference, from the saved per-image "
            "predictions. Both results must share the data fingerprint, the sweep and the "
            "transform convention."
        ),
    )
    c.add_argument("a", type=Path, metavar="A.json")
    c.add_argument("b", type=Path, metavar="B.json")
    c.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    c.add_argument("--out", type=Path, help="also write the comparison as JSON")
    c.add_argument("--force", action="store_true", help="overwrite --out")
    c.set_defaults(handler=run_compare)


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` if available else ``cpu``; a CUDA device must exist."""
    import torch

    text = (name or "auto").strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: no CUDA device is available here; use --device cpu or auto"
            )
        return text
    raise UsageError(f"--device must be auto, cpu, cuda or cuda:N; got {name!r}")


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"{flag} must be a number or comma-separated numbers; got {text!r}"
        ) from None
    return values


def _check_out(out: Path, force: bool, *, resume: bool = False) -> None:
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'result.json'}")
    if out.exists() and not force:
        what = " (the run is complete; nothing to resume)" if resume else ""
        raise UsageError(
            f"--out {out} already exists{what}; pass --force to overwrite or choose another path"
        )


def _sweep(args: argparse.Namespace):
    from transforms import get_sweep, make_sweep, parse_range, parse_shifts

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


def _load(args: argparse.Namespace, *, pairs: bool = False, device: str | None = None):
    """Dataset and model (on ``device``, default ``--device``), with input errors turned into
    :class:`UsageError`."""
    from models import CheckpointError
    from robustness._checkpoints import load_for_eval
    from transforms.datasets import load_dataset

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}")
    device = device or resolve_device(args.device)
    try:
        data = load_dataset(args.dataset, split=args.split, root=args.data_root)
    except (TypeError, ValueError) as exc:  # DatasetError is a ValueError
        raise UsageError(str(exc)) from None
    try:
        loaded = load_for_eval(
            args.checkpoint,
            data=data,
            model=args.model,
            mean=_floats(args.mean, "--mean"),
            std=_floats(args.std, "--std"),
            device=device,
            pairs=pairs,
        )
    except (CheckpointError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    return data, loaded, device


def _bar(args: argparse.Namespace, total: int, desc: str, *, show: bool = True):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        file=sys.stderr,
        disable=not (args.progress and show),
        leave=False,
    )


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; ``None`` leaves torch's default."""
    import torch

    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    torch.set_num_threads(threads)


def eval_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval``: ``(sweep, data, loaded, device, options)``.

    Raises:
        UsageError: any bad input (see the module docstring).
    """
    from robustness._engine import EvalOptions
    from robustness._eval_errors import EvalInputError

    sweep = _sweep(args)
    if args.fill is not None and args.fill.strip().lower() != "mean":
        fill = _floats(args.fill, "--fill")
    else:
        fill = args.fill
    data, loaded, device = _load(args, device=device)
    if loaded.num_inputs == 2:
        raise UsageError(
            f"{args.checkpoint} is a pair classifier ({loaded.record.name}); evaluate it with "
            "'geomrobust eval-pairs'"
        )
    try:
        options = EvalOptions(
            mean=loaded.record.mean,
            std=loaded.record.std,
            interpolation=args.interpolation,
            fill=fill,
            batch_size=args.batch_size,
        )
    except EvalInputError as exc:
        raise UsageError(str(exc)) from None
    return sweep, data, loaded, device, options


def partial_path(out: Path) -> Path:
    """``RESULT.json.partial``: where finished work waits for ``--resume``."""
    return out.with_name(out.name + ".partial")


def write_eval(result, out: Path) -> None:
    """Write an eval result and its predictions, and print the summary."""
    from robustness._io import write_result

    write_result(result, out)
    s = result.summary
    worst = s.worst_point.label()
    print(
        f"clean {s.clean_accuracy:.4f}  mean {s.mean_accuracy:.4f}  worst {s.worst_accuracy:.4f} "
        f"({worst})  all-points {s.all_points_accuracy:.4f}  consistency {s.consistency:.4f}"
    )
    print(f"wrote {out} ({len(result.points)} points × {result.data.n} images)")


def run_eval(args: argparse.Namespace) -> int:
    from robustness._distributed import launch_from_env

    launch = launch_from_env()
    if launch is not None:
        from robustness._distributed import run_sharded_eval

        return run_sharded_eval(args, launch)
    from robustness._engine import evaluate, work_rows
    from robustness._eval_errors import EvalInputError
    from robustness._io import PartialStore

    out: Path = args.out
    set_threads(args.threads)
    _check_out(out, args.force, resume=args.resume)
    partial = partial_path(out)
    sweep, data, loaded, device, options = eval_inputs(args)
    try:
        rows, _ = work_rows(sweep)
        with _bar(args, len(rows) * len(data), f"eval {sweep.name}") as bar:
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
    except EvalInputError as exc:
        if partial.is_dir() and not any(partial.rglob("*.npy")):
            PartialStore(partial, {}, 0).discard()  # nothing finished: leave no trace
        raise UsageError(str(exc)) from None
    write_eval(result, out)
    PartialStore(partial, {}, 0).discard()
    return 0


def pairs_inputs(args: argparse.Namespace, *, device: str | None = None):
    """The checked inputs of ``eval-pairs``: ``(data, loaded, options)``, where ``options``
    are the keyword arguments of :func:`~robustness._pairs_eval.evaluate_pairs` after the
    model and data.

    Raises:
        UsageError: any bad input (see the module docstring).
    """
    if args.pairs < 1:
        raise UsageError(f"--pairs must be >= 1; got {args.pairs}")
    data, loaded, _ = _load(args, pairs=True, device=device)
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
    from robustness._io import write_pair_result

    write_pair_result(result, out)
    lo, hi = result.ci95
    print(f"pair accuracy {result.accuracy:.4f} [{lo:.4f}, {hi:.4f}] on {result.n} pairs")
    print(f"wrote {out}")


def run_eval_pairs(args: argparse.Namespace) -> int:
    from robustness._distributed import launch_from_env

    launch = launch_from_env()
    if launch is not None:
        from robustness._distributed import run_sharded_pairs

        return run_sharded_pairs(args, launch)
    from robustness._eval_errors import EvalInputError
    from robustness._pairs_eval import evaluate_pairs

    out: Path = args.out
    set_threads(args.threads)
    _check_out(out, args.force)
    data, loaded, options = pairs_inputs(args)
    try:
        with _bar(args, args.pairs, "pairs") as bar:
            result = evaluate_pairs(loaded.model, data, progress=bar.update, **options)
    except EvalInputError as exc:
        raise UsageError(str(exc)) from None
    write_pairs(result, out)
    return 0


def _pair_config(training, num_classes: int, *, crop: bool):
    """The pair magnitudes the checkpoint was trained with (``training["pair_config"]``), else
    the defaults; ``--crop`` turns cropping on."""
    from transforms.datasets import PairConfig

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


def run_compare(args: argparse.Namespace) -> int:
    from robustness._compare import compare_results
    from robustness._eval_errors import EvalInputError
    from robustness._io import load_result, write_json_atomic
    from transforms import AffineParams

    if args.out is not None:
        _check_out(args.out, args.force)
    if args.resamples < 1:
        raise UsageError(f"--resamples must be >= 1; got {args.resamples}")
    try:
        a, b = load_result(args.a), load_result(args.b)
        cmp = compare_results(a, b, resamples=args.resamples, seed=args.seed)
    except EvalInputError as exc:
        raise UsageError(str(exc)) from None
    print(f"A: {cmp.model_a}\nB: {cmp.model_b}\nn = {cmp.n} images")
    head = ("point", "acc A", "acc B", "A - B", "A only", "B only", "McNemar p")
    print(
        f"{head[0]:<28} "
        + " ".join(f"{h:>{w}}" for h, w in zip(head[1:], (7, 7, 8, 7, 7, 10), strict=True))
    )
    rows = [("clean", cmp.clean)]
    rows += [(AffineParams(p.scale, p.angle_deg, p.shift_px).label(), p) for p in cmp.points]
    for label, p in rows:
        print(
            f"{label:<28} {p.accuracy_a:7.4f} {p.accuracy_b:7.4f} {p.difference:+8.4f} "
            f"{p.only_a:7d} {p.only_b:7d} {p.mcnemar_p:10.3g}"
        )
    lo, hi = cmp.mean_difference_ci95
    print(
        f"mean accuracy: A {cmp.mean_accuracy_a:.4f}  B {cmp.mean_accuracy_b:.4f}  "
        f"A - B {cmp.mean_accuracy_difference:+.4f}  95% paired bootstrap CI [{lo:+.4f}, {hi:+.4f}]"
    )
    if args.out is not None:
        write_json_atomic(args.out, cmp.to_dict())
        print(f"wrote {args.out}")
    return 0
