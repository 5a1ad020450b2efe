"""The spatial-attack figure: each model's accuracy under the attack's four modes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from geomrobust.reports._fig_style import (
    WIDTH_IN,
    _check_labelled,
    _data_text,
    _figure,
    _legend,
    _legend_columns,
    _resolve_colours,
    _style,
    _titles,
)
from geomrobust.robustness import AttackResult
from geomrobust.robustness._attack_result import MODES

__all__ = ["attack_accuracy"]

_MODE_TICKS = ("clean", "random", "worst-of-k", "grid")


def attack_accuracy(
    results: Sequence[tuple[str, AttackResult]], *, colours: Mapping[str, Any] | None = None
) -> Figure:
    """Accuracy under each mode of a spatial attack (clean, random, worst-of-k, grid).

    Grouped bars, one colour per model, each with its 95 % Wilson interval as an error bar;
    each model's bars form one container labelled with the model (``ax.containers``), in
    mode order. A dotted line marks chance when every model has the same number of classes.

    Args:
        results: ``(label, result)`` pairs, in legend order; results of one attack on the
            same data (:func:`geomrobust.reports._attack.group_attacks`).
        colours: ``{label: colour}`` (default: :func:`model_colours` of the labels).

    Raises:
        ValueError: the results were attacked with different settings (box, ``k``, grid).
    """
    results = _check_labelled(results, "results", AttackResult)
    colours = _resolve_colours([label for label, _ in results], colours)
    settings = {str([r.summary.get(key) for key in ("box", "k", "grid")]) for _, r in results}
    if len(settings) != 1:
        raise ValueError(
            f"the results come from different attacks (box, k, grid): {sorted(settings)}; "
            "draw each attack on its own"
        )
    m, k = len(results), len(MODES)
    width = 0.8 / m
    classes = {r.model.num_classes for _, r in results}
    with _style():
        fig = _figure(WIDTH_IN, 4.4)
        ax = fig.subplots()
        for j, (label, r) in enumerate(results):
            s = r.summary
            x = np.arange(k) - 0.4 + width * (j + 0.5)
            acc = np.array([s[f"{mode}_accuracy"] for mode in MODES]) * 100
            lo = np.array([s[f"{mode}_accuracy_ci95"][0] for mode in MODES]) * 100
            hi = np.array([s[f"{mode}_accuracy_ci95"][1] for mode in MODES]) * 100
            ax.bar(
                x,
                acc,
                width=width * 0.9,
                color=colours[label],
                label=label,
                yerr=np.vstack([acc - lo, hi - acc]),
                error_kw={"ecolor": "0.25", "elinewidth": 1.0, "capsize": 2.5},
            )
        key: list[tuple[Any, str]] = []
        if len(classes) == 1 and None not in classes:
            chance = 100 / next(iter(classes))
            ax.axhline(chance, color="0.55", ls=":", lw=1.0)
            key.append((Line2D([], [], color="0.55", ls=":", lw=1.0), f"chance ({chance:.0f} %)"))
        ax.set_xticks(np.arange(k), _MODE_TICKS)
        ax.set_xlim(-0.6, k - 0.4)
        ax.set_ylim(0, 101.5)
        ax.yaxis.set_major_locator(MultipleLocator(20))
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("Attack mode")
        ax.set_ylabel("Accuracy (%), 95 % Wilson CI")
        models = [(Patch(color=colours[label]), label) for label, _ in results]
        _legend(fig, [models, key], min(max(m, 2), _legend_columns([t for _, t in models])))
        first = results[0][1]
        box = first.summary.get("box") or {}
        bx, by = box.get("max_shift_px") or (0.0, 0.0)
        grid = " × ".join(str(v) for v in first.summary.get("grid") or ())
        preset = first.attack.get("preset")
        what = f"{preset}: " if preset else ""
        _titles(
            fig,
            "Spatial attack: accuracy per mode",
            f"{what}±{box.get('max_angle_deg', 0):g}°, ±{bx:g} px (x), ±{by:g} px (y); "
            f"worst of k = {first.summary.get('k')}; grid {grid}\n"
            f"{_data_text([r for _, r in results])}",
        )
    return fig
