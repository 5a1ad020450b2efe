"""Line and bar figures: accuracy along one transform axis, per-class drops, pair recall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MultipleLocator

from geomrobust.reports._fig_style import (
    _GREY,
    WIDTH_IN,
    _check_labelled,
    _class_names,
    _data_text,
    _figure,
    _legend,
    _legend_columns,
    _num,
    _pair_name,
    _pct,
    _resolve_colours,
    _style,
    _titles,
)
from geomrobust.robustness import EvalResult, PairResult, PointResult

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
