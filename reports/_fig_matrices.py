"""Grid figures: scale × rotation heatmaps, their differences, confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import seaborn as sns
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from geomrobust.reports._fig_style import (
    _ROW_SHARE,
    WIDTH_IN,
    _check_labelled,
    _class_names,
    _data_text,
    _figure,
    _key,
    _num,
    _pair_name,
    _pct,
    _point_text,
    _style,
    _titles,
    _worst_point,
)
from geomrobust.reports._stats import holm_reject
from geomrobust.robustness import EvalResult, PairResult, mcnemar_exact

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
        for (row, col), hit in zip(cells, holm_reject(pvalues, alpha), strict=True):
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


def _row_normalised(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, confusion / np.maximum(totals, 1), np.nan)


def _count_labels(confusion: np.ndarray) -> np.ndarray:
    """Counts as strings, blank for zero (the colour already says zero)."""
    return np.where(confusion > 0, confusion.astype(str), "")


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
