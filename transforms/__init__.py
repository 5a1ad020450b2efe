"""Batched geometric transforms with one convention: scale, rotation and shift about the centre.

Layers:

* functional ops (:func:`affine`, :func:`rotate`, :func:`scale`, :func:`translate`,
  :func:`warp`) on float images ``(B, C, H, W)`` with per-image ``(B,)`` parameters;
* parameters (:class:`AffineParams` for one point, :class:`AffineBatch` for a batch),
  sweeps and grids (:func:`get_sweep`, :func:`make_sweep`, :func:`parse_range`) and
  index-keyed random sampling (:class:`AffineSampler`);
* thin modules (:class:`Warp`, :class:`RandomAffine`).

Convention: ``p' = c + scale · R(angle_deg) · (p - c) + shift_px`` in pixel coordinates
(pixel centres at integers, x right, y down, ``c = ((W - 1) / 2, (H - 1) / 2)``,
``align_corners=False``), positive angles counter-clockwise as displayed. See
``docs/CONVENTION.md``.
"""

from ._functional import (
    affine,
    affine_matrix,
    rotate,
    scale,
    shift_from_fraction,
    translate,
    warp,
)
from ._modules import RandomAffine, Warp
from ._options import Interpolation, Padding
from ._params import AffineBatch, AffineParams
from ._rng import SeedLike, resolve_seed
from ._sampling import AffineSampler, IntervalSet, ShiftDistribution, ShiftMode, ShiftUnit
from ._sweeps import (
    Sweep,
    SweepPreset,
    get_sweep,
    make_sweep,
    parse_range,
    parse_shifts,
    product_shifts,
)

__all__ = [
    "AffineBatch",
    "AffineParams",
    "AffineSampler",
    "Interpolation",
    "IntervalSet",
    "Padding",
    "RandomAffine",
    "SeedLike",
    "ShiftDistribution",
    "ShiftMode",
    "ShiftUnit",
    "Sweep",
    "SweepPreset",
    "Warp",
    "affine",
    "affine_matrix",
    "get_sweep",
    "make_sweep",
    "parse_range",
    "parse_shifts",
    "product_shifts",
    "resolve_seed",
    "rotate",
    "scale",
    "shift_from_fraction",
    "translate",
    "warp",
]
