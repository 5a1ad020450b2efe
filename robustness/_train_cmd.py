"""``geomrobust train`` and ``geomrobust train-pairs``: train a classifier or ``pair-net``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from robustness._errors import UsageError

__all__ = ["add_train_parsers", "run_train", "run_train_pairs"]

log = logging.getLogger("geomrobust")


def _common(p: argparse.ArgumentParser, *, epochs: int, step_gamma: float | None) -> None:
    p.add_argument("--dataset", required=True, help="training dataset (digits, mnist, cifar10...)")
    p.add_argument("--data-root", type=Path, help="folder with the dataset's files")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default: {epochs})")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument(
        "--step-gamma",
        type=float,
        default=step_gamma,
        help="StepLR decay per --step-size epochs (default: "
        f"{'none' if step_gamma is None else step_gamma}; 1 disables it)",
    )
    p.add_argument("--step-size", type=int, default=1, help="epochs between LR decays")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training images held out for validation/model selection (0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights, split, shuffling (0)")
    p.add_argument(
        "--model-args",
        default=None,
        metavar="JSON",
        help="extra builder options as a JSON object, e.g. '{\"offset_bound_frac\": 0.25}'",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (torch.set_num_threads); results are reproducible for a given count",
    )
    p.add_argument("--device", default="cpu", help="device to train on (default: cpu)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--force", action="store_true", help="overwrite --out / restart the run")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars"
    )


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``train-pairs`` on the CLI's subparsers."""
    p = sub.add_parser(
        "train",
        help="train a registered classifier and save its best validation epoch",
        description=(
            "Train a classifier with Adam (optional StepLR) on a dataset's training split, "
            "holding out --val-fraction of it (a seeded, fixed index list) for model selection; "
            "never a test split. Writes OUT.safetensors (best epoch, with normalisation, data "
            "fingerprint, settings and validation figures incl. the 11-point scale sweep), "
            "OUT.log.jsonl (one JSON record per epoch) and, while running, OUT.state.pt for "
            "--resume."
        ),
    )
    p.add_argument("--model", required=True, help="registry name (see 'geomrobust models')")
    _common(p, epochs=14, step_gamma=None)
    p.add_argument(
        "--augment",
        default=None,
        help="random affine augmentation, e.g. 'scale=0.5:1.5,rotation=-30:30,shift=-2:2' "
        "(default: none)",
    )
    p.set_defaults(handler=run_train)

    q = sub.add_parser(
        "train-pairs",
        help="train pair-net to classify transformation pairs",
        description=(
            "Train pair-net on (image, transformed image) pairs labelled by the transforms "
            "applied (7 classes, or 8 with --classes 8). Training pairs are drawn afresh each "
            "epoch from the training part; validation pairs are fixed and drawn from the "
            "held-out images only. Same files and conventions as 'train'."
        ),
    )
    q.add_argument("--encoder", default="mnist-cnn", help="encoder model (default: mnist-cnn)")
    q.add_argument("--classes", type=int, default=7, choices=[7, 8], help="pair classes (7)")
    q.add_argument(
        "--pairs-per-epoch",
        type=int,
        default=0,
        help="training pairs per epoch (default 0: one per training image)",
    )
    q.add_argument("--val-pairs", type=int, default=2000, help="validation pairs (2000)")
    _common(q, epochs=10, step_gamma=None)
    q.set_defaults(handler=run_train_pairs)


def _model_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-args must be a JSON object; got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"--model-args must be a JSON object like '{{\"k\": 1}}'; got {text!r}")
    return value


def _config(args: argparse.Namespace, **extra: Any):
    from models import TrainConfig

    gamma = args.step_gamma
    if gamma is not None and gamma == 1.0:
        gamma = None
    limits = (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1))
    for flag, value, minimum in (*limits, ("--step-size", args.step_size, 1)):
        if value < minimum:
            raise UsageError(f"{flag} must be >= {minimum}; got {value}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0; got {args.seed}")
    if not 0.0 < args.val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in (0, 1), e.g. 0.1; got {args.val_fraction}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be > 0; got {args.lr}")
    if gamma is not None and not 0.0 < gamma <= 1.0:
        raise UsageError(f"--step-gamma must be in (0, 1], e.g. 0.7; got {args.step_gamma}")
    if args.resume and args.force:
        raise UsageError("--resume continues a run and --force restarts it: pass one of them")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1; got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    try:
        return TrainConfig(
            model=extra.pop("model"),
            model_args=extra.pop("model_args"),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            step_gamma=gamma,
            step_size=args.step_size,
            weight_decay=args.weight_decay,
            val_fraction=args.val_fraction,
            seed=args.seed,
            **extra,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _load(args: argparse.Namespace):
    from transforms.datasets import load_dataset

    try:
        return load_dataset(args.dataset, split="train", root=args.data_root)
    except ValueError as exc:  # unknown names and DatasetError
        raise UsageError(str(exc)) from None


def _run(train, config, args: argparse.Namespace) -> int:
    dataset = _load(args)
    try:
        result = train(
            config,
            dataset,
            out=args.out,
            resume=args.resume,
            force=args.force,
            progress=args.progress,
            device=args.device,
        )
    except (FileExistsError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    val = result.validation
    extra = ""
    if "mean_scale_accuracy" in val:
        extra = f", mean over the scale sweep {val['mean_scale_accuracy']:.4f}"
    if "per_class" in val:
        extra = f", worst class {val['min_class_accuracy']:.4f}"
    print(
        f"wrote {result.checkpoint} (best epoch {result.best_epoch} of {result.epochs_run}: "
        f"validation accuracy {val['accuracy']:.4f}{extra}; {result.wall_time_s:.1f} s); "
        f"log {result.log}"
    )
    return 0


def run_train(args: argparse.Namespace) -> int:
    from models import parse_augment, train_classifier

    try:
        augment = parse_augment(args.augment)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = _config(
        args, model=args.model, model_args=_model_args(args.model_args), augment=augment
    )
    return _run(train_classifier, config, args)


def run_train_pairs(args: argparse.Namespace) -> int:
    from models import train_pairs

    if args.pairs_per_epoch < 0:
        raise UsageError(f"--pairs-per-epoch must be >= 0; got {args.pairs_per_epoch}")
    if args.val_pairs < args.classes:
        raise UsageError(
            f"--val-pairs must be >= --classes ({args.classes}) to cover every class; "
            f"got {args.val_pairs}"
        )
    model_args = {"encoder": args.encoder, **_model_args(args.model_args)}
    config = _config(
        args,
        model="pair-net",
        model_args=model_args,
        pair_classes=args.classes,
        pairs_per_epoch=args.pairs_per_epoch,
        val_pairs=args.val_pairs,
    )
    return _run(train_pairs, config, args)
