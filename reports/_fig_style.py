"""Shared pieces of the report figures: constants, the local style, text helpers, colours, saving.

Every figure is built with the object-oriented API inside :func:`_style`, a local seaborn
style, so the global ``rcParams`` are never changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from geomrobust.robustness import EvalResult, PointResult
from geomrobust.transforms import AffineParams

Colour = tuple[float, float, float]

WIDTH_IN = 7.5  # ~800 px at the default 110 dpi
WRONG = "#c0392b"  # frame and title of a misclassified gallery cell
RIGHT = "#5b8c6a"  # muted green of a correct one
_GREY = "0.35"
_ROW_SHARE = "Share of the true class"

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


def _worst_point(result: EvalResult) -> PointResult:
    worst = result.summary.worst_point
    for p in result.points:
        if p.point == worst:
            return p
    return min(result.points, key=lambda p: p.accuracy)


def _pair_name(name: str) -> str:
    return name.replace("_", " + ").lower()


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
