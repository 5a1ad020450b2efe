"""The gallery: example images warped as the engine warped them, with the predictions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geomrobust.reports._fig_style import (
    RIGHT,
    WIDTH_IN,
    WRONG,
    _class_names,
    _figure,
    _pct,
    _point_text,
    _style,
    _titles,
    _worst_point,
)
from geomrobust.robustness import EvalResult
from geomrobust.transforms import AffineParams, warp
from geomrobust.transforms.datasets import FolderDataset, ImageDataset, Preprocess

# --------------------------------------------------------------------------- gallery


def _identity_distance(p: AffineParams, size: int) -> float:
    """How far a point is from the identity (log scale, turns, shift in image sizes)."""
    turn = abs((p.angle_deg + 180.0) % 360.0 - 180.0) / 180.0
    shift = math.hypot(*p.shift_px) / max(size, 1)
    return abs(math.log2(p.scale)) + turn + shift


def _gallery_columns(result: EvalResult, max_points: int, size: int) -> list[int]:
    """Evenly spaced point indices, always with the worst and the most nearly identity one."""
    n = len(result.points)
    worst = result.points.index(_worst_point(result))
    points = [p.point for p in result.points]
    nearest = min(range(n), key=lambda i: (_identity_distance(points[i], size), i))
    must = [worst] if max_points == 1 else sorted({worst, nearest})
    others = [i for i in range(n) if i not in must]
    room = max(0, min(max_points, n) - len(must))
    picks = np.linspace(0, len(others) - 1, room).round().astype(int) if room else []
    return sorted(set(must) | {others[i] for i in picks})


def _gallery_examples(result: EvalResult, columns: list[int], examples: int) -> list[int]:
    """Images that break somewhere shown first, classes taken in turn; no randomness."""
    pred = result.predictions
    labels = pred.labels
    shown = pred.points[columns] == labels[None, :]
    clean_ok = pred.clean == labels
    mixed = shown.any(axis=0) & ~shown.all(axis=0)
    category = np.select(
        [clean_ok & mixed, clean_ok & ~shown.all(axis=0), clean_ok], [0, 1, 2], default=3
    )
    seen: dict[tuple[int, int], int] = {}
    keys = []
    for i in range(labels.shape[0]):
        group = (int(category[i]), int(labels[i]))
        rank = seen.get(group, 0)
        seen[group] = rank + 1
        keys.append((int(category[i]), rank, i))
    return [i for _, _, i in sorted(keys)[:examples]]


def _as_picture(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    if image.shape[0] == 1:
        return image[0], {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    return np.clip(np.moveaxis(image, 0, -1), 0.0, 1.0), {}


def gallery(
    result: EvalResult,
    data: ImageDataset,
    label: str,
    *,
    examples: int = 6,
    max_points: int = 9,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Example images warped exactly as the engine warped them, with the model's predictions.

    Rows are example images (labelled with the true class), columns sweep points (evenly
    spaced over the sweep, at most ``max_points``, always with the worst point and the one
    nearest the identity). Each cell is titled with the predicted class; misclassified
    cells get a red frame and a red title. Examples are chosen without randomness: first
    images the model gets right untransformed but wrong at some shown point, then others,
    taking classes in turn. Images are warped with the result's interpolation, padding and
    fill through :func:`geomrobust.transforms.warp`, the engine's call.

    Args:
        result: The evaluation, with predictions.
        data: The evaluated split (same images, same order).
        label: Model label for the title.
        examples: Rows, >= 1.
        max_points: Columns at most, >= 1.
        class_names: Names of the classes (default: the dataset's).

    Raises:
        ValueError: the result has no predictions, ``data`` is not the evaluated split, or
            ``examples``/``max_points`` are not positive.
    """
    if not isinstance(result, EvalResult):
        raise TypeError(f"result must be an EvalResult; got {type(result).__name__}")
    if not isinstance(data, ImageDataset | FolderDataset):
        raise TypeError(
            f"data must be an ImageDataset or a FolderDataset; got {type(data).__name__}"
        )
    for name, value in (("examples", examples), ("max_points", max_points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    pred = result.predictions
    if pred is None:
        raise ValueError(
            "the gallery needs the per-image predictions; load the result with "
            "load_result(path) (with_predictions=True), which reads RESULT.predictions.npz"
        )
    if len(data) != result.data.n or not np.array_equal(data.labels.numpy(), pred.labels):
        raise ValueError(
            f"data is not the evaluated split: the result has {result.data.n} images of "
            f"{result.data.dataset!r} ({result.data.split}), data has {len(data)} of "
            f"{data.name!r} ({data.split}) with {'other' if len(data) == result.data.n else 'a'}"
            " labels; pass the same split"
        )
    pre = Preprocess.from_dict(result.preprocess) if result.preprocess else Preprocess()
    if isinstance(data, FolderDataset):  # decode only the shown images
        size = max(pre.crop or data.decode([0], preprocess=pre).shape[-2:])
    else:
        size = max(pre.output_size(*data.images.shape[-2:]))
    columns = _gallery_columns(result, max_points, size)
    rows = _gallery_examples(result, columns, examples)
    if isinstance(data, FolderDataset):
        images = data.decode(rows, preprocess=pre)
    else:
        images = data.images[rows]
        images = images if pre.is_identity else pre(images)
    names = _class_names(len(data.classes), class_names, data.classes)
    worst = result.points.index(_worst_point(result))
    tr = result.transform
    fill = None if tr.fill is None else list(tr.fill)
    warped = [
        warp(
            images,
            result.points[c].point,
            interpolation=tr.interpolation,
            padding=tr.padding,
            fill=fill,
        ).numpy()
        for c in columns
    ]
    ncol, nrow = len(columns), len(rows)
    cell = min(1.05, (WIDTH_IN - 0.5) / ncol)
    with _style():
        fig = _figure(max(4.0, cell * ncol + 0.5), cell * 1.15 * nrow + 1.5)
        grid = fig.add_gridspec(nrow + 1, ncol, height_ratios=[0.62] + [1.0] * nrow)
        for j, c in enumerate(columns):
            head = fig.add_subplot(grid[0, j])
            head.axis("off")
            p = result.points[c]
            tag = " (worst)" if c == worst else ""
            head.text(
                0.5,
                0.0,
                f"{_point_text(p, sep=chr(10))}\n{_pct(p.accuracy, 0)}{tag}",
                ha="center",
                va="bottom",
                fontsize="x-small",
                fontweight="bold" if c == worst else "normal",
                transform=head.transAxes,
            )
        for r, i in enumerate(rows):
            for j, c in enumerate(columns):
                ax = fig.add_subplot(grid[r + 1, j])
                picture, kw = _as_picture(warped[j][r])
                ax.imshow(picture, interpolation="nearest", **kw)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                guess = int(pred.points[c, i])
                wrong = guess != int(pred.labels[i])
                colour = WRONG if wrong else RIGHT
                ax.set_gid("gallery-wrong" if wrong else "gallery-right")
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(2.6 if wrong else 1.0)
                ax.set_title(
                    names[guess] if guess < len(names) else str(guess),
                    fontsize="small",
                    color=colour,
                    fontweight="bold" if wrong else "normal",
                    pad=2,
                )
                if j == 0:
                    ax.set_ylabel(f"true: {names[int(pred.labels[i])]}", fontsize="small")
        _titles(
            fig,
            f"{label}: examples under the sweep",
            "columns: sweep point and its accuracy · cell title: prediction · red: wrong",
        )
    return fig
