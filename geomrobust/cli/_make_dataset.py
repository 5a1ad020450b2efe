"""``geomrobust make-dataset``: write a transformed test set or transformation pairs to disk."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._options import add_force, add_out, add_progress, add_seed, progress_bar

log = logging.getLogger("geomrobust")

# Named sets: their defaults; explicit flags override them.
RECIPES = {
    "scaled-mnist": {"dataset": "mnist", "sweep": "scale"},
    "rotated-mnist": {"dataset": "mnist", "sweep": "rotation"},
    "transformed-cifar10": {"dataset": "cifar10", "sweep": "scale-rotation"},
    "pairs-mnist": {"dataset": "mnist", "pairs": 10_000},
    "pairs-cifar10": {"dataset": "cifar10", "pairs": 10_000},
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    recipes = "; ".join(
        f"{name}: " + ", ".join(f"--{k} {v}" for k, v in spec.items())
        for name, spec in RECIPES.items()
    )
    p = sub.add_parser(
        "make-dataset",
        help="write a transformed test set or transformation pairs to disk",
        description=(
            "Materialise a dataset split under a sweep (image i under every point) or as "
            "transformation-classification pairs, as .npy files plus a manifest.json with the "
            "source fingerprint, the transform convention, every image's parameters and the "
            "files' sha256. The same command regenerates the same bytes. Named sets fill in "
            f"defaults ({recipes}); any other NAME needs --dataset and --sweep or --pairs."
        ),
    )
    p.add_argument("name", metavar="NAME", help="name of the set, recorded in the manifest")
    p.add_argument("--dataset", help="source dataset (digits, mnist, fashion-mnist, cifar10)")
    p.add_argument("--data-root", type=Path, help="folder with the dataset's files")
    p.add_argument("--split", default="test", help="split to transform (default: test)")
    p.add_argument(
        "--sweep",
        help="sweep preset: scale, rotation, translation, scale-rotation, cifar-p-rotate, "
        "cifar-p-scale, cifar-p-translate, diagonal-shift-1px",
    )
    p.add_argument("--scales", help="custom scales, 'start:stop:step' or 'a,b,c'")
    p.add_argument(
        "--angles",
        help="custom angles in degrees, 'start:stop:step' or 'a,b,c'; write a negative start "
        "with '=': --angles=-30:30:15",
    )
    p.add_argument(
        "--shifts",
        help="custom shifts in px: --shifts=-4:4:2 (a cross along x and y) or 'x,y;x,y'",
    )
    p.add_argument("--interpolation", default="bilinear", choices=["bilinear", "nearest"])
    p.add_argument(
        "--fill",
        help="pad with a constant: one value, one per channel 'r,g,b', or 'mean' (the split's "
        "per-channel mean); default: zeros",
    )
    p.add_argument("--pairs", type=int, help="write this many transformation pairs instead")
    p.add_argument("--classes", type=int, default=7, choices=[7, 8], help="pair classes")
    p.add_argument("--crop", action="store_true", help="crop pairs free of rotation padding")
    add_seed(p, what="the pairs")
    p.add_argument("--download", action="store_true", help="fetch the dataset (needs internet)")
    add_out(p, metavar="DIR", help="output folder")
    add_force(p, what="a set already in --out")
    p.add_argument("--verify", action="store_true", help="only check --out against its manifest")
    add_progress(p)
    p.set_defaults(handler=run_make_dataset)


def run_make_dataset(args: argparse.Namespace) -> int:
    from geomrobust.transforms.datasets import DatasetError, verify_materialised

    try:
        if args.verify:
            manifest = verify_materialised(args.out)
            print(f"ok: {args.out} matches its manifest ({manifest['n_images']} images)")
            return 0
        return _make(args)
    except (DatasetError, FileExistsError) as exc:
        raise UsageError(str(exc)) from None


def _resolve(args: argparse.Namespace) -> dict:
    spec = dict(RECIPES.get(args.name, {}))
    for key in ("dataset", "sweep", "pairs"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    custom = any(getattr(args, k) for k in ("scales", "angles", "shifts"))
    if custom:
        spec.pop("sweep", None)
    if "dataset" not in spec:
        raise UsageError(
            f"{args.name!r} is not a named set ({', '.join(RECIPES)}): pass --dataset D"
        )
    if "pairs" in spec and (custom or "sweep" in spec) and args.name not in RECIPES:
        raise UsageError("pass either --pairs or a sweep (--sweep/--scales/...), not both")
    if "pairs" not in spec and not custom and "sweep" not in spec:
        raise UsageError("pass --sweep S (or --scales/--angles/--shifts), or --pairs N")
    return spec


def _sweep(args: argparse.Namespace, spec: dict):
    from geomrobust.transforms import get_sweep, make_sweep, parse_range, parse_shifts

    try:
        if "sweep" in spec:
            return get_sweep(spec["sweep"])
        return make_sweep(
            scales=parse_range(args.scales, name="--scales") if args.scales else (1.0,),
            angles=parse_range(args.angles, name="--angles") if args.angles else (0.0,),
            shifts=parse_shifts(args.shifts, name="--shifts") if args.shifts else ((0.0, 0.0),),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _fill(text: str | None, images):
    if text is None:
        return None
    if text.strip().lower() == "mean":
        return images.mean(dim=(0, 2, 3)).tolist()
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--fill must be a number, 'r,g,b' or 'mean'; got {text!r}") from None
    if len(values) not in (1, images.shape[1]):
        raise UsageError(
            f"--fill has {len(values)} values; the images have {images.shape[1]} channel(s)"
        )
    return values


def _command(args: argparse.Namespace, spec: dict) -> str:
    """The command that regenerates the set, without machine-specific paths (--data-root and
    --out are the user's; the source fingerprint identifies the data)."""
    parts = ["geomrobust make-dataset", args.name, f"--dataset {spec['dataset']}"]
    parts.append(f"--split {args.split}")
    if "pairs" in spec:
        parts += [f"--pairs {spec['pairs']}", f"--classes {args.classes}", f"--seed {args.seed}"]
        parts += ["--crop"] if args.crop else []
    elif "sweep" in spec:
        parts.append(f"--sweep {spec['sweep']}")
    else:
        for flag in ("scales", "angles", "shifts"):
            if getattr(args, flag):
                parts.append(f"--{flag} '{getattr(args, flag)}'")
    parts.append(f"--interpolation {args.interpolation}")
    if args.fill is not None:
        parts.append(f"--fill '{args.fill}'")
    return " ".join([*parts, "--data-root DIR --out DIR"])


def _make(args: argparse.Namespace) -> int:
    from geomrobust.transforms.datasets import (
        PairConfig,
        TransformedDataset,
        TransformPairs,
        load_dataset,
        materialise,
        materialise_pairs,
    )

    spec = _resolve(args)
    try:
        source = load_dataset(
            spec["dataset"], split=args.split, root=args.data_root, download=args.download
        )
    except ValueError as exc:  # unknown names and bad splits as well as DatasetError
        raise UsageError(str(exc)) from None
    extra = {"command": _command(args, spec)}
    common = {"name": args.name, "force": args.force, "extra": extra}
    if "pairs" in spec:
        if spec["pairs"] < 1:
            raise UsageError(f"--pairs must be >= 1; got {spec['pairs']}")
        pairs = TransformPairs(
            source,
            spec["pairs"],
            config=PairConfig(
                num_classes=args.classes, crop=args.crop, interpolation=args.interpolation
            ),
            generator=args.seed,
        )
        with progress_bar(args.progress, len(pairs), "pairs") as bar:
            manifest = materialise_pairs(pairs, args.out, progress=bar.update, **common)
    else:
        fill = _fill(args.fill, source.images)
        data = TransformedDataset(
            source,
            _sweep(args, spec),
            interpolation=args.interpolation,
            padding="constant" if fill is not None else "zeros",
            fill=fill,
        )
        with progress_bar(args.progress, len(data), args.name) as bar:
            manifest = materialise(data, args.out, progress=bar.update, **common)
    print(
        f"wrote {manifest['n_images']} images to {args.out} "
        f"(manifest.json, content sha256 {manifest['content_sha256'][:16]}…)"
    )
    return 0
