"""The data and model options of ``eval``, ``eval-pairs`` (and, in part, ``offsets`` and
``train``), and turning them into a dataset and a loaded model."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._options import floats, resolve_device

__all__ = ["add_data_args", "add_model_args", "load_data", "load_model_and_data"]


def add_data_args(
    p: argparse.ArgumentParser, *, split: str | None = "test", folders: bool = False, **dataset
) -> None:
    """``--dataset``, ``--data-root``, ``--download``, ``--max-images`` and (unless
    ``split`` is None) ``--split``; with ``folders``, ``imagefolder`` and its options
    (:func:`add_folder_args`)."""
    names = "digits (embedded), mnist, fashion-mnist, cifar10"
    p.add_argument(
        "--dataset",
        help=f"dataset: {names}"
        + (
            ", or imagefolder: your own images in --data-root DIR/<class>/<image>"
            if folders
            else ""
        ),
        **({"required": True} | dataset),
    )
    p.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="folder with the dataset's files"
        + (
            "; for imagefolder, the folder of class sub-folders (it is the split)"
            if folders
            else ""
        ),
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch the dataset's files with torchvision first (needs internet)",
    )
    if split is not None:
        p.add_argument(
            "--split",
            help=f"split to use (default: {split})"
            + ("; not for imagefolder, where --data-root is the split" if folders else ""),
        )
        p.set_defaults(default_split=split)
    p.add_argument(
        "--max-images",
        type=int,
        metavar="N",
        help="use only the first N images in the dataset's order (recorded in the result)",
    )
    if folders:
        add_folder_args(p)


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """The options of ``imagefolder`` data and of preprocessing."""
    g = p.add_argument_group(
        "image folders and preprocessing",
        "Order: decode -> [0, 1] float -> --resize -> --crop -> the sweep's transform -> "
        "--mean/--std -> model (docs/CONVENTION.md). --resize/--crop apply to every dataset.",
    )
    g.add_argument(
        "--class-map",
        type=Path,
        metavar="FILE",
        help="imagefolder: map folder names to model outputs, a JSON object {folder: index} or "
        "'wnid index' lines; evaluates a model on a subset of its classes (confusion over "
        "the present classes plus '(other)')",
    )
    g.add_argument(
        "--resize",
        type=int,
        metavar="N",
        help="resize the shorter side to N pixels (bilinear, antialias: torchvision Resize(N))",
    )
    g.add_argument("--crop", metavar="N|H,W", help="centre crop to N×N or H×W pixels")
    g.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="imagefolder: processes decoding images (default: half the cores, at most 8; "
        "0 decodes in the main process)",
    )
    g.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="imagefolder: skip files that do not decode (counted and listed in the result) "
        "instead of stopping",
    )
    g.add_argument(
        "--grey",
        action="store_true",
        help="imagefolder: convert colour images to grey for a 1-channel model (grey images "
        "always become RGB for a 3-channel model)",
    )
    g.add_argument(
        "--fingerprint",
        choices=["content", "fast"],
        default="content",
        help="imagefolder: identify the folder by each file's content hash (default) or, "
        "faster, by paths, sizes and modification times",
    )


def preprocess_from_args(args: argparse.Namespace):
    """The :class:`~geomrobust.transforms.datasets.Preprocess` of ``--resize``/``--crop``."""
    from geomrobust.transforms.datasets import Preprocess

    resize, crop_text = getattr(args, "resize", None), getattr(args, "crop", None)
    if resize is not None and resize < 1:
        raise UsageError(f"--resize must be >= 1; got {resize}")
    crop = None
    if crop_text is not None:
        parts = crop_text.replace("x", ",").split(",")
        try:
            values = [int(v) for v in parts]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or min(values) < 1:
            raise UsageError(f"--crop must be N or H,W with positive ints; got {crop_text!r}")
        crop = (values[0], values[-1])
    return Preprocess(resize=resize, crop=crop)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--checkpoint``, ``--model``, ``--model-args``, ``--mean`` and ``--std``."""
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint file (.safetensors or .pt state dict; a training state's "
        "'state_dict'/'model' entry and DataParallel/torch.compile key prefixes are "
        "unwrapped) or ref:NAME (models/refs/)",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="architecture for a checkpoint without metadata: a registry name (see "
        "'geomrobust models'), torchvision:NAME (e.g. torchvision:resnet18), timm:NAME "
        "(needs pip install 'geomrobust[timm]') or package.module:factory; weights are "
        "never downloaded",
    )
    p.add_argument(
        "--model-args",
        metavar="JSON",
        help="keyword arguments for the architecture, as a JSON object, e.g. "
        "'{\"num_classes\": 10}' (torchvision and timm models default to 1000 classes)",
    )
    p.add_argument(
        "--mean",
        metavar="M",
        help="normalisation mean, one value or one per channel 'a,b,c' (overrides the "
        "checkpoint's; default: the checkpoint's, else none: images in [0, 1])",
    )
    p.add_argument("--std", metavar="S", help="normalisation std, as --mean (give both)")


def _parse_model_args(text: str | None) -> dict[str, object] | None:
    """``--model-args JSON`` as a dict (``None`` when not given)."""
    import json

    if text is None:
        return None
    example = "'{\"num_classes\": 10}'"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--model-args must be a JSON object such as {example}; got {text!r} "
            f"({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            f"--model-args must be a JSON object such as {example}; got {text!r}, which "
            "is not an object"
        )
    return value


def _check_split(args: argparse.Namespace) -> str | None:
    split = getattr(args, "split", None)
    if args.dataset is not None and args.dataset.strip().lower() == "imagefolder":
        if split is not None:
            raise UsageError(
                "--split does not apply to imagefolder: --data-root DIR is the split (for "
                "ImageNet, point it at val/)"
            )
        if args.data_root is None:
            raise UsageError(
                "--dataset imagefolder needs --data-root DIR, a folder laid out as "
                "DIR/<class>/<image>"
            )
        return None
    return split or getattr(args, "default_split", None)


def _check_max_images(args: argparse.Namespace) -> int | None:
    n = getattr(args, "max_images", None)
    if n is not None and n < 1:
        raise UsageError(f"--max-images must be >= 1; got {n}")
    return n


def is_folder(args: argparse.Namespace) -> bool:
    """Whether the options name an image folder (``--dataset imagefolder``)."""
    return args.dataset is not None and args.dataset.strip().lower() == "imagefolder"


def load_data(args: argparse.Namespace, *, split: str | None = None):
    """The built-in dataset the options name (``split`` overrides ``--split``), cut to
    ``--max-images``."""
    from geomrobust.transforms.datasets import load_dataset

    if is_folder(args):
        raise UsageError(
            f"this command does not read image folders; use a built-in dataset "
            f"({args.dataset} is supported by 'geomrobust eval')"
        )
    chosen = split or _check_split(args)
    limit = _check_max_images(args)
    try:
        data = load_dataset(args.dataset, split=chosen, root=args.data_root, download=args.download)
    except (TypeError, ValueError) as exc:  # unknown names and splits, and DatasetError
        raise UsageError(str(exc)) from None
    return data if limit is None else data.head(limit)


def load_model_and_data(args: argparse.Namespace, *, pairs: bool = False, device=None):
    """``(data, loaded, device)``: the dataset, and the model on ``device`` (default
    ``--device``) checked against it. For ``--dataset imagefolder`` the model is loaded
    first: its class names and channels decide how the folder is read."""
    from geomrobust.models import CheckpointError
    from geomrobust.robustness import load_for_eval, load_for_folder

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}")
    if (args.mean is None) != (args.std is None):
        raise UsageError("--mean and --std must be given together (or neither)")
    model_args = _parse_model_args(getattr(args, "model_args", None))
    folder = is_folder(args)
    if folder and pairs:
        raise UsageError("eval-pairs does not read image folders; use a built-in dataset")
    _check_folder_only(args, folder)
    _check_split(args)
    device = device or resolve_device(args.device)
    common = {
        "model": args.model,
        "model_args": model_args,
        "mean": floats(args.mean, "--mean"),
        "std": floats(args.std, "--std"),
        "device": device,
    }
    try:
        if folder:
            data, loaded = load_for_folder(
                args.checkpoint,
                root=args.data_root,
                class_map=args.class_map,
                grey=args.grey,
                skip_unreadable=args.skip_unreadable,
                max_images=_check_max_images(args),
                fingerprint=args.fingerprint,
                **common,
            )
        else:
            data = load_data(args)
            loaded = load_for_eval(args.checkpoint, data=data, pairs=pairs, **common)
    except (CheckpointError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    return data, loaded, device


_FOLDER_ONLY = ("class_map", "skip_unreadable", "grey")


def _check_folder_only(args: argparse.Namespace, folder: bool) -> None:
    if folder:
        return
    given = [name for name in _FOLDER_ONLY if getattr(args, name, None)]
    if getattr(args, "fingerprint", "content") != "content":
        given.append("fingerprint")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags} apply only to --dataset imagefolder")
