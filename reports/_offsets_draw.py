"""Drawing the DCN sampling-location figure: panels of sampling points over the image.

The points come from :mod:`geomrobust.reports._offsets`
(:func:`~geomrobust.reports._offsets.sampling_points`, one
:class:`~geomrobust.reports._offsets.SamplingPoints` per scale); this module draws them as a grid
of panels (:func:`offsets_figure`), as same-sized RGB frames (:func:`offsets_frames`) and writes
those frames as an animated GIF (:func:`write_gif`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from geomrobust.reports._offsets import SamplingPoints

__all__ = ["OffsetPanel", "offsets_figure", "offsets_frames", "write_gif"]


@dataclass(frozen=True, eq=False)
class OffsetPanel:
    """One image and the sampling points drawn on it.

    Attributes:
        image: ``(C, H, W)`` float image in [0, 1] as the model saw it (before normalising).
        points: Its :class:`SamplingPoints`.
        scale: The zoom it was made with (for the title).
        clamped: Whether the tracked position had to be clamped to the grid.
    """

    image: Tensor
    points: SamplingPoints
    scale: float
    clamped: bool = False


_STYLE = {
    "regular": {"marker": "+", "color": "#29b6f6", "s": 22, "linewidths": 0.9, "alpha": 0.9},
    "outside": {"marker": "x", "color": "#9e9e9e", "s": 12, "linewidths": 0.8},
    "centre": {"marker": "*", "color": "#00e676", "s": 150, "edgecolors": "black"},
}
_CMAP = "plasma"
_POINT_COLOUR = "#ff3d00"  # DCNv1: no modulation to colour by


def _limits(panels: Sequence[OffsetPanel]) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` covering every image, regular grid and inside point, with a 1 px
    margin (points that read only padding may fall outside and are then clipped)."""
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for p in panels:
        h, w = p.image.shape[-2:]
        frame = [[-0.5, -0.5], [h - 0.5, w - 0.5]]
        pts = np.vstack([p.points.points_yx[p.points.inside], p.points.regular_yx, frame])
        lo, hi = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0))
    return lo[1] - 1, hi[1] + 1, hi[0] + 1, lo[0] - 1  # y axis down


def _norm(panels: Sequence[OffsetPanel]):
    from matplotlib.colors import Normalize

    top = max(len(p.points.modulated) for p in panels)
    return Normalize(0.0, 2.0**top) if top else None


def _caption(p: OffsetPanel, class_names: Sequence[str] | None) -> str:
    sp = p.points
    head = f"scale {p.scale:g} · pos ({sp.position[0]}, {sp.position[1]})"
    if p.clamped:
        head += " (clamped)"
    lines = [head]
    if sp.logits is not None and len(sp.logits):
        prob = np.exp(sp.logits - sp.logits.max())
        prob /= prob.sum()
        k = int(prob.argmax())
        name = class_names[k] if class_names is not None and k < len(class_names) else str(k)
        lines.append(f"pred {name} ({prob[k]:.2f})")
    ratio = sp.spread_px / sp.regular_spread_px if sp.regular_spread_px else float("nan")
    lines.append(f"spread {sp.spread_px:.1f} px (×{ratio:.2f} regular)")
    lines.append(f"{int((~sp.inside).sum())} of {len(sp.inside)} in padding")
    return "\n".join(lines)


def _draw(ax, p: OffsetPanel, norm, limits, class_names) -> None:
    img = p.image.detach().float().cpu()
    h, w = img.shape[-2:]
    pic = img[0].numpy() if img.shape[0] == 1 else img[:3].permute(1, 2, 0).numpy()
    ax.set_facecolor("#cfd8dc")
    ax.imshow(
        pic.clip(0, 1),
        cmap="gray",
        vmin=0.0,
        vmax=1.0,
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="nearest",
    )
    sp = p.points
    reg = np.unique(sp.regular_yx, axis=0)
    ax.scatter(reg[:, 1], reg[:, 0], **_STYLE["regular"], zorder=2)
    pts, ins = sp.points_yx, sp.inside
    ax.scatter(pts[~ins, 1], pts[~ins, 0], **_STYLE["outside"], zorder=3)
    colour = {"color": _POINT_COLOUR} if sp.mask is None else {"c": sp.mask[ins], "cmap": _CMAP}
    ax.scatter(
        pts[ins, 1],
        pts[ins, 0],
        s=16,
        norm=norm,
        edgecolors="black",
        linewidths=0.3,
        zorder=4,
        **colour,
    )
    ax.scatter([sp.centre_yx[1]], [sp.centre_yx[0]], **_STYLE["centre"], linewidths=0.6, zorder=5)
    ax.set_xlim(limits[0], limits[1])
    ax.set_ylim(limits[2], limits[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(_caption(p, class_names), fontsize=7.5)


def _legend_handles(modulated: bool):
    from matplotlib.lines import Line2D

    dot = Line2D([], [], ls="", marker="o", ms=5, mec="black", mew=0.3)
    if modulated:
        from matplotlib import colormaps

        dot.set_markerfacecolor(colormaps[_CMAP](0.85))
    else:
        dot.set_markerfacecolor(_POINT_COLOUR)
    return [
        (dot, "sampling points" + (" (colour: modulation)" if modulated else "")),
        (
            Line2D([], [], ls="", marker="+", ms=6, color=_STYLE["regular"]["color"]),
            "regular grid (zero offsets)",
        ),
        (
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                ms=10,
                mfc=_STYLE["centre"]["color"],
                mec="black",
                mew=0.6,
            ),
            "output position (window centre)",
        ),
        (
            Line2D([], [], ls="", marker="x", ms=5, color=_STYLE["outside"]["color"]),
            "reads only padding",
        ),
    ]


def _decorate(fig, axes, panels: Sequence[OffsetPanel], norm, title: str) -> None:
    from matplotlib.cm import ScalarMappable

    if norm is not None:
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=_CMAP), ax=axes, shrink=0.8, aspect=30)
        layers = " × ".join(panels[0].points.modulated)
        bar.set_label(f"modulation, product over {layers} (1 = neutral)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    handles = _legend_handles(norm is not None)
    fig.legend(
        [h for h, _ in handles],
        [t for _, t in handles],
        loc="outside lower center",
        ncols=len(handles) if len(panels) > 2 else 2,
        fontsize=7.5,
        frameon=False,
    )
    import textwrap

    width = int(fig.get_figwidth() * 13)  # characters that fit at this font size
    lines = [textwrap.fill(line, width) for line in title.splitlines()]
    fig.suptitle("\n".join(lines), fontsize=9.5)


def offsets_figure(
    panels: Sequence[OffsetPanel],
    *,
    title: str = "",
    class_names: Sequence[str] | None = None,
    columns: int = 6,
):
    """A grid of panels, one per scale, with a shared colour scale for the modulation.

    Each panel shows the image, the sampling points (coloured by the product of the DCNv2
    modulations along their path; one colour for DCNv1), the regular grid (``+``), the
    output position's window centre (``*``) and points that read only zero padding
    (``x``); its title gives the scale, the output position, the prediction and the RMS
    spread of the points about their mean (and its ratio to the regular grid's), and how
    many points read only padding.

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot; save it with ``savefig``).
    """
    from matplotlib.figure import Figure

    if not panels:
        raise ValueError("panels must not be empty")
    cols = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(2.05 * cols + 1.0, 2.45 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    limits, norm = _limits(panels), _norm(panels)
    for ax, p in zip(axes.flat, panels, strict=False):
        _draw(ax, p, norm, limits, class_names)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    _decorate(fig, axes, panels, norm, title)
    return fig


def offsets_frames(
    panels: Sequence[OffsetPanel],
    *,
    title: str = "",
    class_names: Sequence[str] | None = None,
    dpi: int = 110,
) -> list[np.ndarray]:
    """One ``(H, W, 3)`` uint8 RGB frame per panel, all the same size, framing and colour
    scale (for an animation); the content is that of :func:`offsets_figure`'s panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    limits, norm = _limits(panels), _norm(panels)
    frames = []
    for p in panels:
        fig = Figure(figsize=(4.6, 5.0), dpi=dpi, layout="constrained")
        canvas = FigureCanvasAgg(fig)
        ax = fig.subplots()
        _draw(ax, p, norm, limits, class_names)
        ax.title.set_fontsize(9)
        _decorate(fig, ax, [p], norm, title)
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def write_gif(frames: Sequence[np.ndarray], path, *, duration_ms: int = 700) -> None:
    """Write RGB frames as an animated GIF that loops forever (one frame per entry)."""
    from PIL import Image

    if not frames:
        raise ValueError("frames must not be empty")
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        disposal=2,
    )
