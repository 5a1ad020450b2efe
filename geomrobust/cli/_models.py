"""``geomrobust models``: the model registry with sizes and costs."""

from __future__ import annotations

import argparse
import json

from geomrobust.cli._errors import UsageError

__all__ = ["add_parser", "run_models"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the registered models with parameters and FLOPs",
        description=(
            "List the registered models: default input shape (C x H x W), class count, "
            "parameter count and FLOPs of one forward pass on one input (2 x multiply-"
            "accumulates of the convolutions and linear layers). A DCN model's 'twin' is "
            "its regular model."
        ),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (default: all)")
    p.add_argument(
        "--in-channels",
        type=int,
        default=None,
        metavar="C",
        help="count for C input channels (default: each model's own, 1 or 3)",
    )
    p.add_argument(
        "--num-classes",
        type=int,
        default=None,
        metavar="N",
        help="count for N output classes (default: each model's own)",
    )
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.add_argument(
        "--refs",
        action="store_true",
        help="list the shipped reference checkpoints (--checkpoint ref:NAME) with their "
        "training data and validation figures",
    )
    p.set_defaults(handler=run_models)


def run_refs(args: argparse.Namespace) -> int:
    """``geomrobust models --refs``: the shipped reference checkpoints."""
    from geomrobust.models import list_refs

    refs = list_refs()
    if args.names:
        known = [r.name for r in refs]
        unknown = [n for n in args.names if n not in known]
        if unknown:
            raise UsageError(f"unknown reference(s) {unknown}; valid: {', '.join(known)}")
        refs = [r for r in refs if r.name in args.names]
    if args.json:
        print(json.dumps([r.to_dict() for r in refs], indent=1))
        return 0
    header = ("ref", "model", "data", "images", "data sha256", "val clean", "val scale mean")
    rows = []
    for r in refs:
        fp, val = r.data_fingerprint, r.validation
        clean = val.get("accuracy")
        mean = val.get("mean_scale_accuracy")
        rows.append(
            (
                f"ref:{r.name}",
                r.model_name,
                f"{fp.get('dataset')}/{fp.get('split')}",
                f"{fp.get('n_images', 0):,}",
                str(fp.get("images_sha256", ""))[:12],
                f"{100 * clean:.1f} %" if clean is not None else "-",
                f"{100 * mean:.1f} %" if mean is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def run_models(args: argparse.Namespace) -> int:
    if getattr(args, "refs", False):
        return run_refs(args)
    from geomrobust.models import get_model_info, list_models

    known = list_models()
    names = list(args.names) or known
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown model(s) {unknown}; valid: {', '.join(known)}")
    limits = (("--in-channels", args.in_channels, 1), ("--num-classes", args.num_classes, 0))
    for flag, value, minimum in limits:
        if value is not None and value < minimum:
            raise UsageError(f"{flag} must be >= {minimum}; got {value}")
    try:
        infos = [
            get_model_info(n, in_channels=args.in_channels, num_classes=args.num_classes)
            for n in names
        ]
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=1))
        return 0
    header = ("name", "input", "classes", "params", "FLOPs", "twin of", "description")
    rows = [
        (
            info.name,
            "x".join(str(v) for v in info.input_shape)
            + (f" x{info.num_inputs}" if info.num_inputs > 1 else ""),
            str(info.num_classes),
            f"{info.params:,}",
            f"{info.flops:,} ({_human(info.flops)})",
            info.twin_of or "-",
            info.description,
        )
        for info in infos
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    right = {2, 3, 4}
    for row in (header, *rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0
