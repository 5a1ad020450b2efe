"""``geomrobust train``: train a registered classifier; the options and steps it shares with
``train-pairs`` (:mod:`geomrobust.cli._train_pairs`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from geomrobust.cli._errors import UsageError
from geomrobust.cli._inputs import add_data_args, load_data
from geomrobust.cli._options import (
    add_batch_size,
    add_device,
    add_force,
    add_out,
    add_progress,
    add_seed,
    add_threads,
    check_writable_folder,
    resolve_device,
    set_threads,
)

__all__ = ["add_parser", "add_training_args", "run", "run_training"]

log = logging.getLogger("geomrobust")


def add_training_args(p: argparse.ArgumentParser, *, epochs: int) -> None:
    """The options of ``train`` and ``train-pairs``."""
    add_data_args(p, split=None)
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default: {epochs})")
    add_batch_size(p, default=64, what="training samples")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument(
        "--step-gamma",
        type=float,
        default=None,
        help="StepLR decay per --step-size epochs (default: none; 1 disables it)",
    )
    p.add_argument("--step-size", type=int, default=1, help="epochs between LR decays")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training images held out for validation/model selection (0.1)",
    )
    add_seed(p, what="weights, split and shuffling")
    p.add_argument(
        "--model-args",
        default=None,
        metavar="JSON",
        help="extra builder options as a JSON object, e.g. '{\"offset_bound_frac\": 0.25}'",
    )
    add_threads(p)
    add_device(p)
    add_out(p, metavar="OUT.safetensors", help="checkpoint path (.safetensors)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from OUT.state.pt; on a run that already finished, "
        "do nothing and exit 0",
    )
    add_force(p, what="--out / restart the run")
    add_progress(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_training_args(p, epochs=14)
    p.add_argument(
        "--augment",
        default=None,
        help="random affine augmentation, e.g. 'scale=0.5:1.5,rotation=-30:30,shift=-2:2' "
        "(default: none)",
    )
    p.set_defaults(handler=run)


def model_args(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--model-args must be a JSON object; got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError(f"--model-args must be a JSON object like '{{\"k\": 1}}'; got {text!r}")
    return value


def train_config(args: argparse.Namespace, **extra: Any):
    from geomrobust.models import TrainConfig

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
    set_threads(args.threads)
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


def already_complete(args: argparse.Namespace) -> bool:
    """``--resume`` on a run whose checkpoint is written and whose state is gone: say so."""
    from geomrobust.models import state_path

    if args.resume and args.force:
        raise UsageError("--resume continues a run and --force restarts it: pass one of them")
    if not args.resume or not args.out.is_file() or state_path(args.out).exists():
        return False
    print(f"{args.out} is already complete; nothing to resume (pass --force to train again)")
    return True


def _check_out(args: argparse.Namespace) -> None:
    from geomrobust.models import state_path

    out: Path = args.out
    state = state_path(out)
    if out.exists() and not args.force:
        raise UsageError(
            f"--out {out} already exists; pass --force to overwrite it or choose another path"
        )
    if args.resume and not state.exists():
        raise UsageError(
            f"nothing to resume: {state} does not exist (it is removed when a run finishes); "
            "run without --resume to start training"
        )
    if state.exists() and not args.resume and not args.force:
        raise UsageError(
            f"{state} holds an interrupted run; pass --resume to continue it or --force to "
            "start over"
        )
    check_writable_folder(out.parent, flag="--out")


def run_training(train, config, args: argparse.Namespace) -> int:
    """Train with ``train`` (``train_classifier`` or ``train_pairs``) and print the outcome."""
    _check_out(args)
    dataset = load_data(args, split="train")
    try:
        result = train(
            config,
            dataset,
            out=args.out,
            resume=args.resume,
            force=args.force,
            progress=args.progress,
            device=resolve_device(args.device),
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


def run(args: argparse.Namespace) -> int:
    from geomrobust.models import parse_augment, train_classifier

    if already_complete(args):
        return 0
    try:
        augment = parse_augment(args.augment, name="--augment")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = train_config(
        args, model=args.model, model_args=model_args(args.model_args), augment=augment
    )
    return run_training(train_classifier, config, args)
