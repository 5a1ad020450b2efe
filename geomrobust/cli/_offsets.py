"""``geomrobust offsets``: where a deformable layer samples one image, across a scale sweep.

Register it with :func:`add_offsets_parser`. Bad input (a regular model, an unknown layer, an
index or position off range, an output suffix other than ``.png``/``.gif``, an existing
output without ``--force``) raises :class:`~geomrobust.cli._errors.UsageError`, which the CLI
prints as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from geomrobust.cli._errors import UsageError
from geomrobust.cli._inputs import add_data_args, load_data
from geomrobust.cli._options import (
    add_device,
    add_force,
    add_out,
    add_progress,
    add_threads,
    progress_bar,
    resolve_device,
    set_threads,
)

__all__ = ["add_parser", "run_offsets"]

log = logging.getLogger("geomrobust")

_SUFFIXES = (".png", ".gif")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``offsets`` on a subparsers object."""
    p = sub.add_parser(
        "offsets",
        help="draw where a deformable layer samples one image, at several scales",
        description=(
            "For one output position of a deformable layer, draw its sampling points on the "
            "input image (as in the DCN papers' figure) at each scale of a sweep: a PNG grid "
            "with one panel per scale, or an animated GIF with one frame per scale. Points are "
            "mapped to input pixels through the layers before it: each earlier deformable "
            "layer's taps are expanded too (two stacked 3x3 layers give 81 points; "
            "--no-propagate keeps only the chosen layer's taps), regular convolutions and "
            "pooling map a point to their window centre. Points are coloured by the product of "
            "the DCNv2 modulations along their path; '+' marks the regular (zero-offset) grid. "
            "The image is zoomed about its centre with the suite's transform (bilinear, zero "
            "padding; docs/CONVENTION.md), and the output position chosen at scale 1 is "
            "followed across scales by zooming its window centre about the image centre and "
            "taking the nearest output position (clamped to the grid, which the panel notes)."
        ),
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT",
        help="checkpoint of a deformable model (.safetensors or .pt) or ref:NAME, e.g. "
        "ref:mnist-cnn-dcnv2",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="architecture for a checkpoint without metadata (registry name or "
        "package.module:factory)",
    )
    add_data_args(p, default="digits", required=False)
    p.add_argument("--index", type=int, default=0, help="image index in the split (default: 0)")
    add_out(
        p,
        metavar="FILE.png|FILE.gif",
        help="output: .png (a grid of panels, one per scale) or .gif (one frame per scale)",
    )
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="deformable layer, by module name (e.g. conv4); default: the last one to run",
    )
    p.add_argument(
        "--position",
        default="centre",
        metavar="centre|max|Y,X",
        help="output position on the layer's output grid at scale 1: 'centre' "
        "((H-1)//2, (W-1)//2; at or next to the image centre, the fixed point of zooming), "
        "'max' (largest L2 norm across channels of the layer's output) or 'Y,X' "
        "(default: centre)",
    )
    p.add_argument(
        "--scales",
        metavar="RANGE",
        help="scales, 'start:stop:step' or 'a,b,c' (default: the 'scale' sweep, 0.5:1.5:0.1)",
    )
    p.add_argument(
        "--propagate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="expand earlier deformable layers' taps too (default: on)",
    )
    p.add_argument(
        "--frame-ms", type=int, default=700, help="GIF frame duration in ms (default: 700)"
    )
    add_device(p)
    add_threads(p)
    add_force(p, what="an existing output")
    add_progress(p)
    p.set_defaults(handler=run_offsets)


def _check_out(out: Path, force: bool) -> str:
    suffix = out.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UsageError(
            f"--out {out}: the suffix must be .png (a grid of panels) or .gif (an animation); "
            f"got {out.suffix or 'none'!r}"
        )
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'offsets.png'}")
    if out.exists() and not force:
        raise UsageError(
            f"--out {out} already exists; pass --force to overwrite or choose another path"
        )
    return suffix


def _position(text: str) -> tuple[int, int] | str:
    t = text.strip().lower()
    if t in ("centre", "center", "max"):
        return "centre" if t == "center" else t
    parts = t.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return (int(parts[0]), int(parts[1]))
    except ValueError:
        raise UsageError(
            f"--position must be 'centre', 'max' or 'Y,X' (integers); got {text!r}"
        ) from None


def _scales(text: str | None) -> tuple[float, ...]:
    from geomrobust.transforms import get_sweep, parse_range

    if text is None:
        return tuple(p.scale for p in get_sweep("scale"))
    try:
        values = parse_range(text, name="--scales")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bad = [v for v in values if not v > 0 or v != v or v == float("inf")]
    if bad:
        raise UsageError(f"--scales must be finite and > 0; got {bad}")
    if len(values) > 60:
        raise UsageError(f"--scales: {len(values)} scales; at most 60 panels/frames")
    return values


def _deformable_refs() -> list[str]:
    from geomrobust.models import get_model_info, list_refs

    out = []
    for ref in list_refs():
        try:
            if ref.model_name and get_model_info(ref.model_name).deformable:
                out.append(f"ref:{ref.name}")
        except (TypeError, ValueError):
            continue
    return out


def run_offsets(args: argparse.Namespace) -> int:
    from geomrobust.models import CheckpointError
    from geomrobust.reports._offsets import deformable_layers, sampling_points, track_position
    from geomrobust.reports._offsets_draw import (
        OffsetPanel,
        offsets_figure,
        offsets_frames,
        write_gif,
    )
    from geomrobust.robustness import load_for_eval
    from geomrobust.transforms import scale

    out: Path = args.out
    suffix = _check_out(out, args.force)
    position = _position(args.position)
    scales = _scales(args.scales)
    if args.frame_ms < 20:
        raise UsageError(f"--frame-ms must be >= 20; got {args.frame_ms}")
    set_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(args)
    if not 0 <= args.index < len(data):
        raise UsageError(
            f"--index must be in 0..{len(data) - 1} ({args.dataset} {data.split} has "
            f"{len(data)} images); got {args.index}"
        )
    try:
        loaded = load_for_eval(args.checkpoint, data=data, model=args.model, device=device)
    except (CheckpointError, ValueError, TypeError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    model = loaded.model.eval()
    layers = deformable_layers(model)
    if not layers:
        refs = ", ".join(_deformable_refs()) or "a DCN twin such as mnist-cnn-dcnv2"
        raise UsageError(
            f"{args.checkpoint} ({loaded.record.name}) has no deformable layers "
            f"(DeformConv2dBlock), so there are no offsets to draw; pass a deformable model, "
            f"e.g. {refs}"
        )
    if args.layer is not None and args.layer not in layers:
        raise UsageError(f"--layer must be one of {layers}; got {args.layer!r}")
    image = data.images[args.index]
    label = data.classes[int(data.labels[args.index])]
    norm = {"mean": loaded.record.mean, "std": loaded.record.std}
    try:
        ref = sampling_points(
            model, image, layer=args.layer, position=position, propagate=args.propagate, **norm
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    import torch

    panels = []
    size = tuple(image.shape[-2:])
    with progress_bar(args.progress, len(scales), "offsets", unit="scale") as bar:
        for s in scales:
            pos, clamped = track_position(ref, s, size)
            with torch.no_grad():
                img = scale(image.unsqueeze(0), s)[0]  # identity at 1: bit-exact
            points = sampling_points(
                model, img, layer=ref.layer, position=pos, propagate=args.propagate, **norm
            )
            panels.append(OffsetPanel(img, points, s, clamped))
            bar.update()
    depth = " × ".join(ref.expanded)
    title = (
        f"{args.checkpoint} · {ref.layer} · {len(ref.points_yx)} points ({depth})\n"
        f"sampling points on {args.dataset} {data.split} #{args.index} (label {label})"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        fig = offsets_figure(panels, title=title, class_names=data.classes)
        fig.savefig(out, dpi=130)
    else:
        frames = offsets_frames(panels, title=title, class_names=data.classes)
        write_gif(frames, out, duration_ms=args.frame_ms)
    print(f"{'scale':>6} {'position':>9} {'pred':>5} {'spread px':>10} {'× regular':>10}")
    for p in panels:
        sp = p.points
        pred = data.classes[int(sp.logits.argmax())] if sp.logits is not None else "-"
        ratio = sp.spread_px / sp.regular_spread_px if sp.regular_spread_px else float("nan")
        where = f"{sp.position[0]},{sp.position[1]}" + ("*" if p.clamped else "")
        print(f"{p.scale:6g} {where:>9} {pred:>5} {sp.spread_px:10.2f} {ratio:10.2f}")
    print(f"wrote {out} ({len(panels)} {'panels' if suffix == '.png' else 'frames'})")
    return 0
