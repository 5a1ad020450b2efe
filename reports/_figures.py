"""Figures of the robustness report: curves, heatmaps, confusion matrices, galleries.

Every function builds a :class:`matplotlib.figure.Figure` with the object-oriented API (no
pyplot state is created) inside a local seaborn style, so the global ``rcParams`` are never
changed. A function returns ``None`` when its figure does not apply to the results given (a
scale curve of a rotation-only sweep, say). :func:`save_figure` writes a PNG and an SVG that
are byte-for-byte reproducible.

Figures follow ``docs/CONVENTION.md``: scale factors (< 1 shrinks the content), angles in
degrees with positive = counter-clockwise as displayed, shifts in pixels (x right, y down).
Accuracies are in percent, differences in percentage points (pp).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from robustness._metrics import mcnemar_exact
from robustness._pairs_eval import PairResult
from robustness._results import EvalResult, PointResult
from transforms import AffineParams, warp
from transforms.datasets import ImageDataset

__all__ = [
    "accuracy_curve",
    "confusion_matrices",
    "gallery",
    "heatmap_difference",
    "model_colours",
    "pair_confusion",
    "pair_recall",
    "per_class_drop",
    "save_figure",
    "scale_rotation_heatmap",
]

Colour = tuple[float, float, float]

WIDTH_IN = 7.5  # ~800 px at the default 110 dpi
WRONG = "#c0392b"  # frame and title of a misclassified gallery cell
RIGHT = "#5b8c6a"  # muted green of a correct one
_GREY = "0.35"
_ROW_SHARE = "Share of the true class"

# axis -> panels; panel -> (axis label, identity value, title word)
_CURVE_AXES = {"scale": ("scale",), "angle": ("angle",), "shift": ("shift_x", "shift_y")}
_PANELS = {
    "scale": ("Scale factor (< 1 shrinks, > 1 enlarges)", 1.0, "scaling"),
    "angle": ("Rotation angle (°, positive = counter-clockwise)", 0.0, "rotation"),
    "shift_x": ("Horizontal shift x (px, positive = right)", 0.0, "x shift (y = 0)"),
    "shift_y": ("Vertical shift y (px, positive = down)", 0.0, "y shift (x = 0)"),
}
_SLICES = {
    "scale": "angle 0°, no shift",
    "angle": "scale 1, no shift",
    "shift": "scale 1, angle 0°, shift along one axis",
}

# --------------------------------------------------------------------------- helpers


@contextmanager
def _style() -> Iterator[None]:
    """The local seaborn style of every figure (rcParams are restored on exit)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        yield


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _num(value: float) -> str:
    """``value`` with ``:g`` and a typographic minus."""
    return f"{value:g}".replace("-", "\u2212")


def _pct(fraction: float, digits: int = 1) -> str:
    return f"{100 * fraction:.{digits}f} %"


def _point_text(p: AffineParams | PointResult, sep: str = ", ") -> str:
    """``'scale 0.5, −45°, shift (2, 0) px'``; ``'identity'`` for the identity."""
    parts = []
    if p.scale != 1.0:
        parts.append(f"scale {_num(p.scale)}")
    if p.angle_deg % 360.0 != 0.0:
        parts.append(f"{_num(p.angle_deg)}°")
    if tuple(p.shift_px) != (0.0, 0.0):
        parts.append(f"shift ({_num(p.shift_px[0])}, {_num(p.shift_px[1])}) px")
    return sep.join(parts) or "identity"


def _key(value: float) -> float:
    return round(float(value), 9)


def _check_labelled(items: Any, name: str, kind: type) -> list[tuple[str, Any]]:
    """``items`` as a list of ``(label, kind)`` with unique labels."""
    out = list(items)
    for item in out:
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], kind)
        ):
            raise TypeError(
                f"{name} must be (label, {kind.__name__}) pairs; got {type(item).__name__} "
                f"{item!r:.80}"
            )
    if not out:
        raise ValueError(f"{name} is empty; give at least one (label, {kind.__name__}) pair")
    labels = [label for label, _ in out]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ValueError(f"{name} has duplicate labels {dupes}; give each model its own label")
    return out


def _resolve_colours(labels: Sequence[str], colours: Mapping[str, Any] | None) -> dict[str, Any]:
    if colours is None:
        return model_colours(labels)
    missing = [label for label in labels if label not in colours]
    if missing:
        raise ValueError(
            f"colours has no entry for {missing}; build it with model_colours() over all labels"
        )
    return dict(colours)


def _class_names(k: int, given: Sequence[str] | None, stored: Sequence[str] | None) -> list[str]:
    if given is not None:
        names = [str(n) for n in given]
        if len(names) != k:
            raise ValueError(f"class_names has {len(names)} names; the results have {k} classes")
        return names
    if stored is not None and len(stored) == k:
        return [str(n) for n in stored]
    return [str(i) for i in range(k)]


def _data_text(results: Sequence[EvalResult]) -> str:
    """``'digits test, n = 359 · bilinear, zero padding'`` when all results share it."""
    parts = []
    data = {(r.data.dataset, r.data.split, r.data.n) for r in results}
    if len(data) == 1:
        dataset, split, n = data.pop()
        parts.append(f"{dataset} {split}, n = {n}")
    tr = {(r.transform.interpolation, r.transform.padding, r.transform.fill) for r in results}
    if len(tr) == 1:
        interpolation, padding, fill = tr.pop()
        pad = "zero padding" if fill is None else f"fill {', '.join(_num(v) for v in fill)}"
        if padding not in ("zeros", "constant"):
            pad = f"{padding} padding"
        parts.append(f"{interpolation}, {pad}")
    return " · ".join(parts)


def _titles(fig: Figure, title: str, subtitle: str = "") -> None:
    """The figure title, with an optional second line of context below it."""
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize="medium", linespacing=1.4)


def _legend(fig: Figure, groups: Sequence[Sequence[tuple[Any, str]]], ncols: int) -> None:
    """A figure legend below the axes, read row by row, each group starting a new row."""
    rows: list[list[tuple[Any, str]]] = []
    for group in groups:
        for start in range(0, len(group), ncols):
            rows.append(list(group[start : start + ncols]))
    blank = (Line2D([], [], alpha=0), "")
    rows = [row + [blank] * (ncols - len(row)) for row in rows]
    entries = [rows[r][c] for c in range(ncols) for r in range(len(rows))]  # column-major
    fig.legend(
        [h for h, _ in entries],
        [t for _, t in entries],
        loc="outside lower center",
        ncols=ncols,
        frameon=False,
        fontsize="small",
    )


def _legend_columns(texts: Sequence[str]) -> int:
    """Columns of a legend under a 7.5-inch figure: as many as its longest entry allows."""
    longest = max(map(len, texts), default=0)
    return 4 if longest <= 18 else 3 if longest <= 28 else 2


def _row_normalised(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, confusion / np.maximum(totals, 1), np.nan)


def _count_labels(confusion: np.ndarray) -> np.ndarray:
    """Counts as strings, blank for zero (the colour already says zero)."""
    return np.where(confusion > 0, confusion.astype(str), "")


# --------------------------------------------------------------------------- colours


def model_colours(labels: Sequence[str]) -> dict[str, Colour]:
    """One colour per model, the same in every figure of a report.

    Args:
        labels: Model labels in display order; unique.

    Returns:
        ``{label: (r, g, b)}`` from seaborn's ``"colorblind"`` palette in the given order, or
        evenly spaced ``"husl"`` hues for more than 10 models.

    Raises:
        ValueError: duplicate labels.
    """
    labels = [str(label) for label in labels]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ValueError(f"labels must be unique; {dupes} appear more than once")
    n = len(labels)
    palette = sns.color_palette("colorblind", n) if n <= 10 else sns.color_palette("husl", n)
    return {label: tuple(float(v) for v in rgb) for label, rgb in zip(labels, palette, strict=True)}


# --------------------------------------------------------------------------- curves


def _axis_points(result: EvalResult, panel: str) -> list[tuple[float, PointResult]]:
    """``(x, point)`` of the result's points on one panel's axis, sorted by ``x``."""
    out: dict[float, PointResult] = {}
    for p in result.points:
        sx, sy = p.shift_px
        on_origin = p.scale == 1.0 and p.angle_deg == 0.0
        if panel == "scale" and p.angle_deg == 0.0 and (sx, sy) == (0.0, 0.0):
            x = p.scale
        elif panel == "angle" and p.scale == 1.0 and (sx, sy) == (0.0, 0.0):
            x = p.angle_deg
        elif panel == "shift_x" and on_origin and sy == 0.0:
            x = sx
        elif panel == "shift_y" and on_origin and sx == 0.0:
            x = sy
        else:
            continue
        out.setdefault(x, p)
    return sorted(out.items())


def accuracy_curve(
    results: Sequence[tuple[str, EvalResult]],
    axis: str,
    *,
    colours: Mapping[str, Any] | None = None,
) -> Figure | None:
    """Accuracy along one transform axis, one line per model with its 95 % Wilson band.

    Points are taken from each result where the other parameters are at identity:
    ``"scale"``: angle 0 and no shift; ``"angle"``: scale 1 and no shift; ``"shift"``:
    scale 1 and angle 0, drawn as two panels (x shift with y = 0, y shift with x = 0). A
    dashed line marks the identity, a star each model's clean accuracy.

    Args:
        results: ``(label, result)`` pairs, in legend order.
        axis: ``"scale"``, ``"angle"`` or ``"shift"``.
        colours: ``{label: colour}`` (default: :func:`model_colours` of the labels).

    Returns:
        The figure, or ``None`` when no model has at least 2 points on the axis.
    """
    if axis not in _CURVE_AXES:
        raise ValueError(f"axis must be one of {sorted(_CURVE_AXES)}; got {axis!r}")
    results = _check_labelled(results, "results", EvalResult)
    colours = _resolve_colours([label for label, _ in results], colours)
    data = {
        panel: [(label, r, _axis_points(r, panel)) for label, r in results]
        for panel in _CURVE_AXES[axis]
    }
    panels = [p for p, rows in data.items() if any(len(pts) >= 2 for _, _, pts in rows)]
    if not panels:
        return None
    classes = {r.model.num_classes or len(r.clean.confusion) for _, r in results}
    with _style():
        fig = _figure(WIDTH_IN, 4.4)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, panel in zip(axes, panels, strict=True):
            xlabel, identity, word = _PANELS[panel]
            ax.axvline(identity, color=_GREY, ls="--", lw=1.0, zorder=1)
            xs_all: set[float] = set()
            for label, r, pts in data[panel]:
                if not pts:
                    continue
                c = colours[label]
                x = np.array([v for v, _ in pts])
                acc = np.array([p.accuracy for _, p in pts]) * 100
                lo = np.array([p.ci95[0] for _, p in pts]) * 100
                hi = np.array([p.ci95[1] for _, p in pts]) * 100
                xs_all.update(x.tolist())
                ax.fill_between(x, lo, hi, color=c, alpha=0.18, lw=0, zorder=2)
                ax.plot(x, acc, marker="o", ms=4, lw=1.8, color=c, label=label, zorder=3)
                ax.plot(
                    [identity],
                    [r.clean.accuracy * 100],
                    marker="*",
                    ms=13,
                    ls="none",
                    color=c,
                    mec="white",
                    mew=0.8,
                    zorder=4,
                    gid="clean",
                )
            if len(classes) == 1:
                ax.axhline(100 / next(iter(classes)), color="0.55", ls=":", lw=1.0, zorder=1)
            _curve_xaxis(ax, panel, sorted(xs_all))
            ax.set_xlabel(xlabel)
            if len(panels) > 1:
                ax.set_title(word, fontsize="medium")
        axes[0].set_ylabel("Accuracy (%)")
        axes[0].set_ylim(-1.5, 101.5)
        axes[0].yaxis.set_major_locator(MultipleLocator(20))
        models = [
            (
                Line2D([], [], color=colours[label], marker="o", ms=4, lw=1.8),
                f"{label} (clean {_pct(r.clean.accuracy)})",
            )
            for label, r in results
        ]
        key = [
            (
                Line2D([], [], marker="*", ms=11, ls="none", color="0.45", mec="white"),
                "clean (untransformed)",
            ),
            (Patch(color="0.45", alpha=0.25, lw=0), "95 % CI (Wilson)"),
        ]
        if len(classes) == 1:
            key.append((Line2D([], [], color="0.55", ls=":", lw=1.0), "chance"))
        _legend(fig, [models, key], _legend_columns([t for _, t in models]))
        what = "translation" if axis == "shift" else _PANELS[panels[0]][2]
        subtitle = _data_text([r for _, r in results])
        used = {id(p) for rows in data.values() for _, _, pts in rows for _, p in pts}
        if any(id(p) not in used for _, r in results for p in r.points):
            subtitle += f"\nslice of the sweep: {_SLICES[axis]}"
        _titles(fig, f"Accuracy under {what}", subtitle)
    return fig


def _curve_xaxis(ax: Any, panel: str, xs: list[float]) -> None:
    if panel == "angle":
        span = (max(xs) - min(xs)) if xs else 0.0
        step = 45 if span > 180 else 30 if span > 90 else 15 if span > 30 else None
        if step is not None:
            ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{_num(v)}°"))
    elif len(xs) <= 13:
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _num(round(v, 6))))
    if len(xs) >= 2:
        pad = 0.03 * (max(xs) - min(xs))
        ax.set_xlim(min(xs) - pad, max(xs) + pad)


# --------------------------------------------------------------------------- heatmaps


def _grid(result: EvalResult) -> dict[tuple[float, float], int]:
    """``(scale, angle) -> index`` of the result's points without shift."""
    out: dict[tuple[float, float], int] = {}
    for i, p in enumerate(result.points):
        if tuple(p.shift_px) == (0.0, 0.0):
            out.setdefault((_key(p.scale), _key(p.angle_deg)), i)
    return out


def _grid_axes(keys: Any) -> tuple[list[float], list[float]]:
    """Scales ascending (columns) and angles descending (rows: positive at the top)."""
    scales = sorted({s for s, _ in keys})
    angles = sorted({a for _, a in keys}, reverse=True)
    return scales, angles


def _heatmap_size(rows: int, cols: int) -> tuple[float, float, bool]:
    """Figure width and height, and whether cells are big enough for annotations."""
    cell_w = (WIDTH_IN - 1.9) / cols
    cell_h = min(0.55, max(0.16, cell_w * 0.6))
    height = min(10.5, max(3.2, rows * cell_h + 1.9))
    cell_h = (height - 1.9) / rows
    return WIDTH_IN, height, cell_w >= 0.3 and cell_h >= 0.2


def _mark_cell(ax: Any, row: int, col: int) -> None:
    rect = Rectangle((col, row), 1, 1, fill=False, ec="white", lw=1.6, zorder=5, gid="identity")
    rect.set_path_effects([patheffects.withStroke(linewidth=3.2, foreground="black")])
    ax.add_patch(rect)


def _grid_ticks(ax: Any, scales: list[float], angles: list[float]) -> None:
    ax.set_xticks(np.arange(len(scales)) + 0.5, [_num(s) for s in scales], rotation=0)
    step = 1 if len(angles) <= 30 else math.ceil(len(angles) / 25)
    ax.set_yticks(
        np.arange(0, len(angles), step) + 0.5,
        [f"{_num(a)}°" for a in angles[::step]],
        rotation=0,
    )
    ax.set_xlabel("Scale factor (< 1 shrinks)")
    ax.set_ylabel("Rotation angle (positive = counter-clockwise)")
    ax.tick_params(length=0)


def scale_rotation_heatmap(result: EvalResult, label: str) -> Figure | None:
    """Accuracy (%) over the scale × angle grid of the points without shift.

    Columns are scales (ascending), rows angles (positive at the top); colours are fixed to
    0–100 %, cells are annotated when they are big enough to read, and the identity cell is
    outlined. The colour array (``ax.collections[0].get_array()``) is row-major in that
    order, with missing points masked.

    Returns:
        The figure, or ``None`` with fewer than 2 scales or 2 angles.
    """
    if not isinstance(result, EvalResult):
        raise TypeError(f"result must be an EvalResult; got {type(result).__name__}")
    grid = _grid(result)
    scales, angles = _grid_axes(grid)
    if len(scales) < 2 or len(angles) < 2:
        return None
    values = np.full((len(angles), len(scales)), np.nan)
    for (s, a), i in grid.items():
        values[angles.index(a), scales.index(s)] = result.points[i].accuracy * 100
    width, height, annotate = _heatmap_size(len(angles), len(scales))
    many = values.size > 60
    with _style():
        fig = _figure(width, height)
        ax = fig.subplots()
        sns.heatmap(
            values,
            ax=ax,
            vmin=0,
            vmax=100,
            cmap="viridis",
            annot=annotate,
            fmt=".0f" if many else ".1f",
            annot_kws={"fontsize": 8 if many else 9},
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": "Accuracy (%)", "shrink": 0.8, "pad": 0.02},
        )
        _grid_ticks(ax, scales, angles)
        if (1.0, 0.0) in grid:
            _mark_cell(ax, angles.index(0.0), scales.index(1.0))
        s = result.summary
        _titles(
            fig,
            f"{label}: accuracy over scale × rotation",
            f"{_data_text([result])}\nclean {_pct(s.clean_accuracy)} · mean "
            f"{_pct(s.mean_accuracy)} · worst {_pct(s.worst_accuracy)} at "
            f"{_point_text(s.worst_point)} · outlined: identity",
        )
    return fig


def _paired(a: EvalResult, b: EvalResult) -> bool:
    """Whether image ``i`` under a point is the same input for both results."""
    if a.predictions is None or b.predictions is None:
        return False
    same_data = a.data.fingerprint == b.data.fingerprint and a.data.n == b.data.n
    same_warp = (a.transform.interpolation, a.transform.padding, a.transform.fill) == (
        b.transform.interpolation,
        b.transform.padding,
        b.transform.fill,
    )
    return same_data and same_warp and np.array_equal(a.predictions.labels, b.predictions.labels)


def _holm(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm–Bonferroni rejections (family-wise error ``alpha``) of ``pvalues``."""
    m = pvalues.size
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(pvalues, kind="stable")):
        if pvalues[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


def heatmap_difference(
    a: tuple[str, EvalResult],
    b: tuple[str, EvalResult],
    *,
    significance: bool = True,
    alpha: float = 0.05,
) -> Figure | None:
    """B minus A in percentage points over the scale × angle grid both results share.

    Colours are diverging, centred at 0 with symmetric limits (blue: B better). When both
    results carry predictions of the same images warped the same way, cells whose
    difference is significant by an exact McNemar test, Holm-corrected over the cells at
    family-wise level ``alpha``, get an asterisk (or a dot when cells are too small to
    annotate).

    Args:
        a, b: ``(label, result)`` of the two models.
        significance: Test and mark the cells (when the results are paired).
        alpha: Family-wise significance level, in (0, 1).

    Returns:
        The figure, or ``None`` without a common grid of at least 2 scales × 2 angles.
    """
    (la, ra), (lb, rb) = _check_labelled([a, b], "a, b", EvalResult)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    ga, gb = _grid(ra), _grid(rb)
    common = sorted(ga.keys() & gb.keys())
    scales, angles = _grid_axes(common)
    if len(scales) < 2 or len(angles) < 2:
        return None
    diff = np.full((len(angles), len(scales)), np.nan)
    cells = [(angles.index(ang), scales.index(s)) for s, ang in common]
    for (s, ang), (row, col) in zip(common, cells, strict=True):
        pa, pb = ra.points[ga[s, ang]], rb.points[gb[s, ang]]
        diff[row, col] = (pb.accuracy - pa.accuracy) * 100
    tested = significance and _paired(ra, rb)
    marked = np.zeros(diff.shape, dtype=bool)
    if tested:
        ca, cb = ra.predictions.correct(), rb.predictions.correct()
        pvalues = np.array(
            [
                mcnemar_exact(
                    int(np.sum(ca[ga[k]] & ~cb[gb[k]])), int(np.sum(cb[gb[k]] & ~ca[ga[k]]))
                )
                for k in common
            ]
        )
        for (row, col), hit in zip(cells, _holm(pvalues, alpha), strict=True):
            marked[row, col] = hit
    limit = max(1.0, float(np.ceil(np.nanmax(np.abs(diff)))))
    width, height, annotate = _heatmap_size(len(angles), len(scales))
    many = diff.size > 60
    digits = 0 if many else 1
    text = np.full(diff.shape, "", dtype=object)
    for row, col in cells:
        v = round(float(diff[row, col]), digits)
        body = "0" if v == 0 else f"{v:+.{digits}f}".replace("-", "\u2212")
        text[row, col] = body + ("*" if marked[row, col] else "")
    with _style():
        fig = _figure(width, height)
        ax = fig.subplots()
        sns.heatmap(
            diff,
            ax=ax,
            vmin=-limit,
            vmax=limit,
            cmap="RdBu",  # symmetric limits: white is exactly 0
            annot=text if annotate else False,
            fmt="",
            annot_kws={"fontsize": 8 if many else 9},
            linewidths=0.5,
            linecolor="white",
            cbar_kws={"label": f"{lb} − {la} (pp)", "shrink": 0.8, "pad": 0.02},
        )
        if tested and not annotate:
            rows, cols = np.nonzero(marked)
            ax.plot(cols + 0.5, rows + 0.5, "o", ms=2.5, color="black", gid="significant")
        _grid_ticks(ax, scales, angles)
        if (1.0, 0.0) in ga.keys() & gb.keys():
            _mark_cell(ax, angles.index(0.0), scales.index(1.0))
        if tested:
            note = (
                f"{'*' if annotate else '•'} significant: exact McNemar, Holm-corrected over "
                f"{len(common)} cells, α = {alpha:g} ({int(marked.sum())} cells)"
            )
        elif significance:
            note = "significance not tested: the results lack predictions of the same images"
        else:
            note = ""
        mean_diff = float(np.nanmean(diff))
        sub = f"positive (blue): {lb} more accurate · mean over grid {mean_diff:+.1f} pp".replace(
            "-", "\u2212"
        )
        _titles(fig, f"{lb} − {la}: accuracy difference", "\n".join(filter(None, [sub, note])))
    return fig


# --------------------------------------------------------------------------- confusion


def _worst_point(result: EvalResult) -> PointResult:
    worst = result.summary.worst_point
    for p in result.points:
        if p.point == worst:
            return p
    return min(result.points, key=lambda p: p.accuracy)


def _confusion_panel(
    ax: Any, confusion: np.ndarray, names: list[str], *, cbar: bool, cbar_ax: Any = None
) -> Any:
    k = len(names)
    annotate = k <= 20
    sns.heatmap(
        _row_normalised(confusion),
        ax=ax,
        vmin=0,
        vmax=1,
        cmap="Blues",
        annot=_count_labels(confusion) if annotate else False,
        fmt="",
        annot_kws={"fontsize": 8 if k <= 10 else 6.5},
        linewidths=0.4,
        linecolor="0.92",
        square=True,
        cbar=cbar,
        cbar_ax=cbar_ax,
        cbar_kws={"label": _ROW_SHARE} if cbar else None,
        xticklabels=names,
        yticklabels=names,
    )
    ax.set_xlabel("Predicted class")
    ax.tick_params(length=0)
    ax.tick_params(axis="y", labelrotation=0)
    return ax.collections[0]


def confusion_matrices(
    result: EvalResult, label: str, *, class_names: Sequence[str] | None = None
) -> Figure:
    """Confusion matrices at the clean point and at the worst sweep point, side by side.

    Colours are row-normalised (each true class's recall, shared scale 0–1); cells show the
    counts (blank for zero).

    Args:
        result: The evaluation.
        label: Model label for the title.
        class_names: Names of the classes (default: the model's, else the indices).
    """
    if not isinstance(result, EvalResult):
        raise TypeError(f"result must be an EvalResult; got {type(result).__name__}")
    clean = np.asarray(result.clean.confusion)
    worst = _worst_point(result)
    names = _class_names(clean.shape[0], class_names, result.model.class_names)
    side = (WIDTH_IN - 1.5) / 2
    with _style():
        fig = _figure(WIDTH_IN, side + 1.5)
        axes = fig.subplots(1, 2)
        _confusion_panel(axes[0], clean, names, cbar=False)
        _confusion_panel(axes[1], np.asarray(worst.confusion), names, cbar=False)
        fig.colorbar(axes[0].collections[0], ax=list(axes), shrink=0.75, label=_ROW_SHARE)
        axes[0].set_ylabel("True class")
        axes[1].set_ylabel("")
        axes[0].set_title(f"Clean (identity): {_pct(result.clean.accuracy)}", fontsize="medium")
        axes[1].set_title(f"Worst: {_point_text(worst)}: {_pct(worst.accuracy)}", fontsize="medium")
        _titles(fig, f"{label}: confusion matrices", _data_text([result]))
    return fig


def pair_confusion(result: PairResult, label: str) -> Figure:
    """Confusion matrix of a pair classifier: recall colours, counts annotated."""
    if not isinstance(result, PairResult):
        raise TypeError(f"result must be a PairResult; got {type(result).__name__}")
    names = [_pair_name(n) for n in result.class_names]
    with _style():
        fig = _figure(WIDTH_IN, 6.4)
        ax = fig.subplots()
        _confusion_panel(ax, np.asarray(result.confusion), names, cbar=True)
        ax.set_ylabel("True pair class")
        ax.set_xlabel("Predicted pair class")
        ax.set_xticklabels(names, rotation=35, ha="right", rotation_mode="anchor")
        lo, hi = result.ci95
        _titles(
            fig,
            f"{label}: pair-class confusion",
            f"{result.data.dataset} {result.data.split} · {result.n} pairs (seed "
            f"{result.seed}) · accuracy {_pct(result.accuracy)} "
            f"[{100 * lo:.1f}, {100 * hi:.1f}]",
        )
    return fig


def _pair_name(name: str) -> str:
    return name.replace("_", " + ").lower()


# --------------------------------------------------------------------------- bars


def _class_drops(result: EvalResult) -> np.ndarray:
    """Per class: clean accuracy minus the mean over sweep points, in pp (NaN if unknown)."""
    k = len(result.clean.per_class_accuracy)
    out = np.full(k, np.nan)
    for c in range(k):
        clean = result.clean.per_class_accuracy[c]
        values = [p.per_class_accuracy[c] for p in result.points]
        values = [v for v in values if v is not None]
        if clean is not None and values:
            out[c] = (clean - float(np.mean(values))) * 100
    return out


def per_class_drop(
    results: Sequence[tuple[str, EvalResult]],
    *,
    colours: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Per class, the drop from clean accuracy to the mean over the sweep points.

    Grouped bars, one colour per model; positive = the class loses accuracy under the
    sweep. Each model's bars form one container labelled with the model
    (``ax.containers``).

    Raises:
        ValueError: the results have different numbers of classes.
    """
    results = _check_labelled(results, "results", EvalResult)
    colours = _resolve_colours([label for label, _ in results], colours)
    ks = {len(r.clean.per_class_accuracy) for _, r in results}
    if len(ks) != 1:
        raise ValueError(f"the results have different numbers of classes {sorted(ks)}")
    k = ks.pop()
    names = _class_names(k, class_names, results[0][1].model.class_names)
    m = len(results)
    width = 0.8 / m
    with _style():
        fig = _figure(WIDTH_IN, 4.2)
        ax = fig.subplots()
        for j, (label, r) in enumerate(results):
            x = np.arange(k) - 0.4 + width * (j + 0.5)
            ax.bar(x, _class_drops(r), width=width * 0.92, color=colours[label], label=label)
        ax.axhline(0, color="0.2", lw=0.9)
        ax.set_xticks(np.arange(k), names, rotation=0 if max(map(len, names)) <= 3 else 30)
        if max(map(len, names)) > 3:
            for t in ax.get_xticklabels():
                t.set_ha("right")
                t.set_rotation_mode("anchor")
        ax.set_xlim(-0.6, k - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("True class")
        ax.set_ylabel("Accuracy drop (pp)")
        sweeps = {(r.sweep.name, len(r.points)) for _, r in results}
        entries = [
            (
                Patch(color=colours[label]),
                label if len(sweeps) == 1 else f"{label} ({r.sweep.name}, {len(r.points)} pts)",
            )
            for label, r in results
        ]
        _legend(fig, [entries], min(m, _legend_columns([t for _, t in entries])))
        sweep = ""
        if len(sweeps) == 1:
            name, count = sweeps.pop()
            sweep = f"{name} sweep, {count} points · "
        _titles(
            fig,
            "Per-class accuracy drop: clean → mean over the sweep",
            f"{sweep}{_data_text([r for _, r in results])}\npositive = the class is less "
            "accurate under the sweep than untransformed",
        )
    return fig


def pair_recall(
    results: Sequence[tuple[str, PairResult]], *, colours: Mapping[str, Any] | None = None
) -> Figure:
    """Per-class recall of pair classifiers, horizontal grouped bars with 95 % Wilson bars.

    Each model's bars form one container labelled with the model (``ax.containers``); a
    class without pairs has no bar.

    Raises:
        ValueError: the results have different pair classes.
    """
    results = _check_labelled(results, "results", PairResult)
    colours = _resolve_colours([label for label, _ in results], colours)
    classes = {r.class_names for _, r in results}
    if len(classes) != 1:
        raise ValueError(f"the results have different pair classes: {sorted(classes)}")
    names = [_pair_name(n) for n in classes.pop()]
    k, m = len(names), len(results)
    height = 0.8 / m
    with _style():
        fig = _figure(WIDTH_IN, min(10.0, 1.8 + k * (0.12 + 0.2 * m)))
        ax = fig.subplots()
        for j, (label, r) in enumerate(results):
            y = np.arange(k) - 0.4 + height * (j + 0.5)
            recall = np.array([np.nan if v is None else v * 100 for v in r.per_class_recall])
            lo = np.array([ci[0] * 100 for ci in r.per_class_ci95])
            hi = np.array([ci[1] * 100 for ci in r.per_class_ci95])
            err = np.vstack([np.nan_to_num(recall - lo), np.nan_to_num(hi - recall)])
            ax.barh(
                y,
                recall,
                height=height * 0.9,
                color=colours[label],
                label=label,
                xerr=err,
                error_kw={"ecolor": "0.25", "elinewidth": 1.0, "capsize": 2.5},
            )
        chance = 100 / k
        ax.axvline(chance, color="0.55", ls=":", lw=1.0)
        ax.set_yticks(np.arange(k), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.xaxis.set_major_locator(MultipleLocator(20))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("Recall (%) with 95 % Wilson interval")
        handles = [Patch(color=colours[label]) for label, _ in results]
        texts = [f"{label} (accuracy {_pct(r.accuracy)}, {r.n} pairs)" for label, r in results]
        handles.append(Line2D([], [], color="0.55", ls=":", lw=1.0))
        texts.append(f"chance ({chance:.1f} %)")
        _legend(fig, [list(zip(handles, texts, strict=True))], 2)
        data = {(r.data.dataset, r.data.split) for _, r in results}
        _titles(
            fig,
            "Pair classifiers: recall per pair class",
            " · ".join(f"pairs from {d} {s}" for d, s in sorted(data)),
        )
    return fig


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
    fill through :func:`transforms.warp`, the engine's call.

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
    if not isinstance(data, ImageDataset):
        raise TypeError(f"data must be an ImageDataset; got {type(data).__name__}")
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
    size = max(data.images.shape[-2:])
    columns = _gallery_columns(result, max_points, size)
    rows = _gallery_examples(result, columns, examples)
    names = _class_names(len(data.classes), class_names, data.classes)
    worst = result.points.index(_worst_point(result))
    tr = result.transform
    fill = None if tr.fill is None else list(tr.fill)
    images = data.images[rows]
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


# --------------------------------------------------------------------------- saving


def save_figure(fig: Figure, folder: Path, stem: str, *, dpi: int = 110) -> tuple[Path, Path]:
    """Write ``folder/stem.png`` and ``folder/stem.svg`` reproducibly, then close ``fig``.

    The SVG has a fixed ``svg.hashsalt`` and no date, the PNG no date or software version,
    so the same figure gives the same bytes on every run with the same fonts and versions.

    Returns:
        ``(png_path, svg_path)``.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
        raise ValueError(f"stem must be a plain file name without extension; got {stem!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{stem}.png", folder / f"{stem}.svg"
    with mpl.rc_context({"svg.hashsalt": "geomrobust", "svg.fonttype": "path"}):
        fig.savefig(png, dpi=dpi, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    if "matplotlib.pyplot" in sys.modules:  # a pyplot-managed figure is released there
        sys.modules["matplotlib.pyplot"].close(fig)
    return png, svg
