"""``geomrobust train-pairs``: train ``pair-net`` to classify transformation pairs."""

from __future__ import annotations

import argparse

from geomrobust.cli._errors import UsageError
from geomrobust.cli._train import (
    add_training_args,
    already_complete,
    model_args,
    run_training,
    train_config,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    add_training_args(q, epochs=10)
    q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from geomrobust.models import train_pairs

    if already_complete(args):
        return 0
    if args.pairs_per_epoch < 0:
        raise UsageError(f"--pairs-per-epoch must be >= 0; got {args.pairs_per_epoch}")
    if args.val_pairs < args.classes:
        raise UsageError(
            f"--val-pairs must be >= --classes ({args.classes}) to cover every class; "
            f"got {args.val_pairs}"
        )
    config = train_config(
        args,
        model="pair-net",
        model_args={"encoder": args.encoder, **model_args(args.model_args)},
        pair_classes=args.classes,
        pairs_per_epoch=args.pairs_per_epoch,
        val_pairs=args.val_pairs,
    )
    return run_training(train_pairs, config, args)
