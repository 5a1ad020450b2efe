"""``geomrobust demo``: the main job on the embedded ``digits`` data.

Today it renders the transform library's sweeps on real digits (a picture of the
convention) and writes the sweeps' exact points; training, evaluation and the report join
it as those parts of the suite land.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from robustness._errors import UsageError

log = logging.getLogger("geomrobust")

_SWEEPS = ("scale", "rotation", "translation")
_OUTPUTS = (*tuple(f"transforms_{name}.png" for name in _SWEEPS), "sweeps.json")


def add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded digits data",
        description=(
            "Run the main job on scikit-learn's bundled digits (offline, no data to fetch): "
            "render the scale, rotation and translation sweeps on real digits and write the "
            "sweeps' exact points."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--force", action="store_true", help="overwrite outputs of an earlier run")
    p.add_argument("--examples", type=int, default=4, help="digits shown per figure (default: 4)")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.out
    if not 1 <= args.examples <= 32:
        raise UsageError(f"--examples must be in 1..32; got {args.examples}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; choose another path")
    existing = [name for name in _OUTPUTS if (out / name).exists()]
    if existing and not args.force:
        raise UsageError(
            f"{out} already holds {', '.join(existing)} from an earlier run; "
            "pass --force to overwrite or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)

    from transforms import get_sweep
    from transforms.datasets import load_digits

    images, labels = load_digits("test")
    picks = [int((labels == d).nonzero()[0]) for d in range(args.examples % 10 or 10)]
    picks = (picks * 4)[: args.examples]
    sample = images[picks]
    written = []
    for name in _SWEEPS:
        sweep = get_sweep(name)
        points = sweep.points if name != "rotation" else sweep.points[::2]
        path = out / f"transforms_{name}.png"
        _gallery(sample, points, title=f"sweep '{name}'", path=path)
        written.append(path)
    sweeps = {name: get_sweep(name).to_dict() for name in (*_SWEEPS, "scale-rotation")}
    (out / "sweeps.json").write_text(json.dumps(sweeps, indent=1) + "\n")
    written.append(out / "sweeps.json")
    for path in written:
        print(f"wrote {path}")
    return 0


def _gallery(images, points, *, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from transforms import warp

    rows, cols = images.shape[0], len(points)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.95 * rows + 0.5), squeeze=False)
    with torch.no_grad():
        columns = [warp(images, p) for p in points]
    for j, (point, warped) in enumerate(zip(points, columns, strict=True)):
        for i in range(rows):
            ax = axes[i][j]
            ax.imshow(warped[i, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][j].set_title(point.label().replace(", ", "\n"), fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
