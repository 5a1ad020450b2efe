"""The data and model options of ``eval``, ``eval-pairs`` (and, in part, ``offsets`` and
``train``), and turning them into a dataset and a loaded model."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._options import floats, resolve_device

__all__ = ["add_data_args", "add_model_args", "load_data", "load_model_and_data"]


def add_data_args(p: argparse.ArgumentParser, *, split: str | None = "test", **dataset) -> None:
    """``--dataset``, ``--data-root``, ``--download`` and (unless ``split`` is None)
    ``--split``."""
    p.add_argument(
        "--dataset",
        help="dataset: digits (embedded), mnist, fashion-mnist, cifar10",
        **({"required": True} | dataset),
    )
    p.add_argument("--data-root", type=Path, metavar="DIR", help="folder with the dataset's files")
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch the dataset's files with torchvision first (needs internet)",
    )
    if split is not None:
        p.add_argument("--split", default=split, help=f"split to use (default: {split})")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--model``, ``--mean`` and ``--std``."""
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
        "--mean",
        metavar="M",
        help="normalisation mean, one value or one per channel 'a,b,c' (overrides the "
        "checkpoint's; default: the checkpoint's, else none: images in [0, 1])",
    )
    p.add_argument("--std", metavar="S", help="normalisation std, as --mean (give both)")


def load_data(args: argparse.Namespace, *, split: str | None = None):
    """The dataset the options name (``split`` overrides ``--split``)."""
    from geomrobust.transforms.datasets import load_dataset

    try:
        return load_dataset(
            args.dataset,
            split=split or args.split,
            root=args.data_root,
            download=args.download,
        )
    except (TypeError, ValueError) as exc:  # unknown names and splits, and DatasetError
        raise UsageError(str(exc)) from None


def load_model_and_data(args: argparse.Namespace, *, pairs: bool = False, device=None):
    """``(data, loaded, device)``: the dataset, and the model on ``device`` (default
    ``--device``) checked against it."""
    from geomrobust.models import CheckpointError
    from geomrobust.robustness import load_for_eval

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}")
    if (args.mean is None) != (args.std is None):
        raise UsageError("--mean and --std must be given together (or neither)")
    device = device or resolve_device(args.device)
    data = load_data(args)
    try:
        loaded = load_for_eval(
            args.checkpoint,
            data=data,
            model=args.model,
            mean=floats(args.mean, "--mean"),
            std=floats(args.std, "--std"),
            device=device,
            pairs=pairs,
        )
    except (CheckpointError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    return data, loaded, device
