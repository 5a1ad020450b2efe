"""Figures of the robustness report: curves, heatmaps, confusion matrices, galleries.

Every function builds a :class:`matplotlib.figure.Figure` with the object-oriented API (no
pyplot state is created) inside a local seaborn style, so the global ``rcParams`` are never
changed. A function returns ``None`` when its figure does not apply to the results given (a
scale curve of a rotation-only sweep, say). :func:`save_figure` writes a PNG and an SVG that
are byte-for-byte reproducible.

Figures follow ``docs/CONVENTION.md``: scale factors (< 1 shrinks the content), angles in
degrees with positive = counter-clockwise as displayed, shifts in pixels (x right, y down).
Accuracies are in percent, differences in percentage points (pp).

This module gathers the figures; they live in ``_fig_style`` (shared constants, style,
colours, saving), ``_fig_curves`` (lines and bars), ``_fig_matrices`` (heatmaps and
confusion matrices), ``_fig_gallery`` (example images) and ``_fig_attack`` (the spatial
attack's modes).
"""

from __future__ import annotations

from geomrobust.reports._fig_attack import attack_accuracy
from geomrobust.reports._fig_curves import accuracy_curve, pair_recall, per_class_drop
from geomrobust.reports._fig_gallery import gallery
from geomrobust.reports._fig_matrices import (
    confusion_matrices,
    heatmap_difference,
    pair_confusion,
    scale_rotation_heatmap,
)
from geomrobust.reports._fig_style import RIGHT as RIGHT
from geomrobust.reports._fig_style import WIDTH_IN as WIDTH_IN
from geomrobust.reports._fig_style import WRONG as WRONG
from geomrobust.reports._fig_style import Colour as Colour
from geomrobust.reports._fig_style import model_colours, save_figure

__all__ = [
    "accuracy_curve",
    "attack_accuracy",
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
