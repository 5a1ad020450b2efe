"""``geomrobust demo``: the main job, end to end, on the embedded ``digits`` data.

It trains ``mnist-cnn`` and its DCNv2 twin ``mnist-cnn-dcnv2`` on the digits training split,
evaluates both under the scale, rotation and scale × rotation sweeps, trains and evaluates a
small transformation-pair classifier, and writes the side-by-side report. Everything is
seeded and offline; ``--device`` (default ``auto``: CUDA when there is one) picks where it runs.

Layout of ``--out``::

    transforms_{scale,rotation,translation}.png   the sweeps drawn on real digits
    checkpoints/   MODEL.safetensors (+ .log.jsonl) for the three models
    results/       MODEL-SWEEP.json (+ .predictions.npz), pairs.json
    report/        index.html, report.md, summary.csv, figures/
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from geomrobust.cli._errors import UsageError, as_flags
from geomrobust.cli._options import (
    add_device,
    add_force,
    add_out,
    add_progress,
    add_seed,
    add_threads,
    resolve_device,
    set_threads,
)

log = logging.getLogger("geomrobust")

_CLASSIFIERS = ("mnist-cnn", "mnist-cnn-dcnv2")
_EVAL_SWEEPS = ("scale", "rotation", "scale-rotation")
_PICTURES = ("scale", "rotation", "translation")
_OUTPUTS = (
    *(f"transforms_{name}.png" for name in _PICTURES),
    "checkpoints",
    "results",
    "report",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded digits data (train, evaluate, report)",
        description=(
            "The main job on scikit-learn's bundled digits (offline, nothing to fetch): train "
            "mnist-cnn and its DCNv2 twin, evaluate both under the scale, rotation and "
            "scale x rotation sweeps, train and evaluate a transformation-pair classifier, "
            "and write the side-by-side report to OUT/report/index.html. About 2 minutes on "
            "2 CPU cores."
        ),
    )
    add_out(p, metavar="DIR", help="output folder (created if missing)")
    add_force(p, what="the outputs of an earlier run in --out")
    add_seed(p, what="every step")
    p.add_argument(
        "--epochs", type=int, default=12, help="training epochs of each classifier (default: 12)"
    )
    p.add_argument(
        "--pair-epochs", type=int, default=6, help="training epochs of the pair classifier"
    )
    p.add_argument(
        "--train-pairs",
        type=int,
        default=4000,
        help="fresh training pairs per epoch of the pair classifier (default: 4000)",
    )
    p.add_argument(
        "--pairs", type=int, default=2000, help="test pairs for the pair classifier (default 2000)"
    )
    p.add_argument(
        "--test-images",
        type=int,
        help="evaluate on the first N test images only (default: all 359), for a quick run",
    )
    add_device(p)
    add_threads(p)
    add_progress(p)
    p.set_defaults(handler=run_demo)


def _check_args(args: argparse.Namespace) -> None:
    for flag, value, low in (
        ("--epochs", args.epochs, 1),
        ("--pair-epochs", args.pair_epochs, 1),
        ("--pairs", args.pairs, 7),
        ("--train-pairs", args.train_pairs, 64),
    ):
        if value < low:
            raise UsageError(f"{flag} must be >= {low}; got {value}")
    if args.test_images is not None and args.test_images < 10:
        raise UsageError(f"--test-images must be >= 10; got {args.test_images}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose another path")
    existing = [name for name in _OUTPUTS if (out / name).exists()]
    if existing and not args.force:
        raise UsageError(
            f"{out} already holds {', '.join(existing)} from an earlier run; "
            "pass --force to replace them or choose another --out"
        )


def run_demo(args: argparse.Namespace) -> int:
    _check_args(args)
    import shutil

    set_threads(args.threads)
    device = resolve_device(args.device)
    out: Path = args.out
    if args.force:
        for name in _OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    progress = args.progress

    from geomrobust.transforms.datasets import load_dataset

    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    _draw_sweeps(test, out)
    if args.test_images is not None and args.test_images < len(test):
        test = test.head(args.test_images)

    ckpts = _train_classifiers(args, train, out / "checkpoints", device, progress)
    results = _evaluate(ckpts, test, out / "results", device, progress)
    pair_result = _pairs(args, train, test, out, device, progress)

    from geomrobust.reports import build_report

    files = build_report(
        [*results, pair_result],
        out / "report",
        title="geomrobust demo: mnist-cnn vs mnist-cnn-dcnv2 on digits",
        progress=progress,
        extra_data=[test],
    )
    elapsed = time.perf_counter() - started
    for note in files.notes:
        print(f"note: {as_flags(note)}")
    print(f"demo finished in {elapsed:.0f} s")
    print(f"report: {files.html}")
    print(f"        {files.markdown} and {files.csv}, figures in {files.html.parent / 'figures'}")
    return 0


def _train_classifiers(args, train, folder: Path, device, progress: bool) -> dict[str, Path]:
    from geomrobust.models import TrainConfig, train_classifier

    paths = {}
    for name in _CLASSIFIERS:
        config = TrainConfig(model=name, epochs=args.epochs, batch_size=32, seed=args.seed)
        path = folder / f"{name}.safetensors"
        print(f"training {name} on digits ({args.epochs} epochs)")
        result = train_classifier(config, train, out=path, progress=progress, device=device)
        v = result.validation
        print(
            f"  best epoch {result.best_epoch}: validation accuracy "
            f"{_fmt(v.get('accuracy'))}, scale-sweep mean {_fmt(v.get('mean_scale_accuracy'))} "
            f"({result.wall_time_s:.0f} s)"
        )
        paths[name] = path
    return paths


def _fmt(value) -> str:
    return "?" if value is None else f"{100 * float(value):.1f} %"


def _evaluate(ckpts: dict[str, Path], test, folder: Path, device, progress: bool) -> list[Path]:
    from tqdm import tqdm

    from geomrobust.robustness import EvalOptions, evaluate, load_for_eval, work_rows, write_result
    from geomrobust.transforms import get_sweep

    written = []
    for sweep_name in _EVAL_SWEEPS:
        sweep = get_sweep(sweep_name)
        for name, ckpt in ckpts.items():
            loaded = load_for_eval(ckpt, data=test, device=device)
            options = EvalOptions(mean=loaded.record.mean, std=loaded.record.std)
            total = len(work_rows(sweep)[0]) * len(test)
            with tqdm(
                total=total,
                desc=f"eval {name} {sweep_name}",
                unit="img",
                disable=not progress,
                leave=False,
            ) as bar:
                result = evaluate(
                    loaded.model,
                    test,
                    sweep,
                    options=options,
                    device=device,
                    record=loaded.record,
                    assumptions=loaded.assumptions,
                    progress=bar.update,
                )
            path = write_result(result, folder / f"{name}-{sweep_name}.json")
            s = result.summary
            print(
                f"{name:16s} {sweep_name:15s} clean {_fmt(s.clean_accuracy)}  mean "
                f"{_fmt(s.mean_accuracy)}  worst {_fmt(s.worst_accuracy)} "
                f"({s.worst_point.label()})"
            )
            written.append(path)
    return written


def _pairs(args, train, test, out: Path, device, progress: bool) -> Path:

    from geomrobust.models import TrainConfig, train_pairs
    from geomrobust.robustness import evaluate_pairs, load_for_eval, write_pair_result

    ckpt = out / "checkpoints" / "pair-net.safetensors"
    config = TrainConfig(
        model="pair-net",
        model_args={"encoder": "cifar-small"},
        epochs=args.pair_epochs,
        batch_size=64,
        seed=args.seed,
        pair_classes=7,
        pairs_per_epoch=args.train_pairs,
        val_pairs=700,
    )
    print(f"training the pair classifier pair-net on digit pairs ({args.pair_epochs} epochs)")
    trained = train_pairs(config, train, out=ckpt, progress=progress, device=device)
    print(f"  best epoch {trained.best_epoch} ({trained.wall_time_s:.0f} s)")
    loaded = load_for_eval(ckpt, data=test, device=device, pairs=True)
    result = evaluate_pairs(
        loaded.model,
        test,
        num_pairs=args.pairs,
        seed=args.seed,
        mean=loaded.record.mean,
        std=loaded.record.std,
        record=loaded.record,
    )
    path = write_pair_result(result, out / "results" / "pairs.json")
    lo, hi = result.ci95
    print(
        f"pair-net         pairs           accuracy {_fmt(result.accuracy)} "
        f"[{_fmt(lo)}, {_fmt(hi)}] on {result.n} test pairs"
    )
    return path


def _draw_sweeps(test, out: Path) -> None:
    """Draw the scale, rotation and translation sweeps on one test image of each of four
    digits: a picture of the convention (positive angles counter-clockwise)."""
    import torch
    from matplotlib.figure import Figure

    from geomrobust.transforms import get_sweep, warp

    picks = [int((test.labels == d).nonzero()[0]) for d in range(4)]
    images = test.images[picks]
    for name in _PICTURES:
        sweep = get_sweep(name)
        points = sweep.points if name != "rotation" else sweep.points[::2]
        rows, cols = images.shape[0], len(points)
        fig = Figure(figsize=(0.9 * cols, 0.95 * rows + 0.5))
        axes = fig.subplots(rows, cols, squeeze=False)
        with torch.no_grad():
            columns = [warp(images, p) for p in points]
        for j, (point, warped) in enumerate(zip(points, columns, strict=True)):
            for i in range(rows):
                ax = axes[i][j]
                ax.imshow(warped[i, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[0][j].set_title(point.label().replace(", ", "\n"), fontsize=6)
        fig.suptitle(f"sweep '{name}'", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"transforms_{name}.png", dpi=110)
