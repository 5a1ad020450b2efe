"""The box, draws and grid of the spatial attack of Engstrom et al. (2019), and its presets.

Every image is attacked inside the box ``|angle| <= max_angle_deg``, ``|x| <= bound_x``,
``|y| <= bound_y`` (pixels; the suite's convention: rotation about the centre, then the
shift, positive angles counter-clockwise, y down). Draws are uniform in the box and a pure
function of ``(seed, image index, draw)``, so they are the same whatever the batch size,
device or number of ranks. See ``docs/PROTOCOLS.md`` for the presets' sources.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import torch

from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.transforms import AffineBatch, AffineParams
from geomrobust.transforms._rng import keyed_uniform

__all__ = ["AttackConfig", "AttackPreset", "attack_preset"]

RANDOM_DRAW, PAIR_DRAW, FIRST_WORST_DRAW = 0, 1, 2
"""Draw numbers: the random attack's, the second draw of pair consistency, then the ``k``
draws of worst-of-k."""

_STREAMS = (1001, 1002, 1003)  # angle, x shift, y shift


class AttackPreset(StrEnum):
    """Published settings of the spatial attack (``docs/PROTOCOLS.md``)."""

    ENGSTROM_MNIST = "engstrom-mnist"
    ENGSTROM_CIFAR = "engstrom-cifar"
    ENGSTROM_IMAGENET = "engstrom-imagenet"


@dataclass(frozen=True)
class AttackConfig:
    """One attack's settings.

    Attributes:
        max_angle_deg: Half-width of the angle range, degrees (>= 0).
        max_shift_px: Half-width of the x and y shift ranges, pixels (>= 0); or ``None``
            with ``max_shift_fraction``.
        max_shift_fraction: Half-width as a fraction of the image's width (x) and height
            (y): ``3/28`` is 24 px at 224 (``engstrom-imagenet``).
        k: Draws of worst-of-k (>= 1).
        grid: ``(angles, x shifts, y shifts)`` values of the exhaustive grid, each >= 1,
            evenly spaced over the box (one value: 0).
        canvas_pad: Warp on a canvas padded by this many pixels and crop the centre back.
        seed: Seed of the draws.
        preset: The preset's name, or ``None``.

    Raises:
        EvalInputError: an empty box, a negative half-width, ``k < 1`` or a grid size < 1.
    """

    max_angle_deg: float = 30.0
    max_shift_px: float | None = 3.0
    max_shift_fraction: float | None = None
    k: int = 10
    grid: tuple[int, int, int] = (31, 5, 5)
    canvas_pad: int = 0
    seed: int = 0
    preset: str | None = None

    def __post_init__(self) -> None:
        if (self.max_shift_px is None) == (self.max_shift_fraction is None):
            raise EvalInputError("give one of max_shift_px and max_shift_fraction")
        half_widths = {
            "max_angle_deg": self.max_angle_deg,
            "max_shift_px": self.max_shift_px,
            "max_shift_fraction": self.max_shift_fraction,
        }
        for name, value in half_widths.items():
            if value is not None and (not np.isfinite(value) or value < 0):
                raise EvalInputError(f"{name} must be a finite number >= 0; got {value!r}")
        if self.max_angle_deg == 0 and not (self.max_shift_px or self.max_shift_fraction):
            raise EvalInputError(
                "the attack's box is empty (max_angle_deg=0 and no shift): give "
                "max_angle_deg > 0 or max_shift_px > 0"
            )
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise EvalInputError(f"k must be an int >= 1; got {self.k!r}")
        grid = tuple(self.grid)
        if len(grid) != 3 or not all(isinstance(n, int) and n >= 1 for n in grid):
            raise EvalInputError(
                f"grid must be 3 sizes (angles, x shifts, y shifts), each >= 1; got {self.grid!r}"
            )
        object.__setattr__(self, "grid", grid)
        if isinstance(self.canvas_pad, bool) or not isinstance(self.canvas_pad, int):
            raise EvalInputError(f"canvas_pad must be an int >= 0; got {self.canvas_pad!r}")
        if self.canvas_pad < 0:
            raise EvalInputError(f"canvas_pad must be an int >= 0; got {self.canvas_pad!r}")

    def shift_bounds(self, height: int, width: int) -> tuple[float, float]:
        """``(bound_x, bound_y)`` in pixels for images of ``height × width``."""
        if self.max_shift_px is not None:
            return float(self.max_shift_px), float(self.max_shift_px)
        return float(self.max_shift_fraction * width), float(self.max_shift_fraction * height)

    def grid_points(self, height: int, width: int) -> tuple[AffineParams, ...]:
        """The grid, ordered angles, then x shifts, then y shifts (outermost first)."""
        bx, by = self.shift_bounds(height, width)
        na, nx, ny = self.grid
        angles = _even(self.max_angle_deg, na)
        xs, ys = _even(bx, nx), _even(by, ny)
        return tuple(AffineParams(1.0, a, (x, y)) for a in angles for x in xs for y in ys)

    def draws(self, indices: np.ndarray, draw: int, height: int, width: int) -> np.ndarray:
        """``(len(indices), 3)`` float64 ``(angle_deg, x, y)`` of draw ``draw`` of each
        image, uniform in the box."""
        bx, by = self.shift_bounds(height, width)
        half = (self.max_angle_deg, bx, by)
        cols = [
            (2.0 * keyed_uniform(self.seed, indices, stream=s, epoch=draw) - 1.0) * h
            for s, h in zip(_STREAMS, half, strict=True)
        ]
        return np.stack(cols, axis=1)

    def box(self, height: int, width: int) -> dict[str, Any]:
        bx, by = self.shift_bounds(height, width)
        return {"max_angle_deg": self.max_angle_deg, "max_shift_px": [bx, by]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "max_angle_deg": self.max_angle_deg,
            "max_shift_px": self.max_shift_px,
            "max_shift_fraction": self.max_shift_fraction,
            "k": self.k,
            "grid": list(self.grid),
            "canvas_pad": self.canvas_pad,
            "seed": self.seed,
            "draws": "uniform in the box, keyed by (seed, image index, draw); draw 0: random, "
            "1: the second draw of pair consistency, 2..k+1: worst-of-k",
        }


def as_batch(params: np.ndarray, like: torch.Tensor) -> AffineBatch:
    """An :class:`AffineBatch` of ``(B, 3)`` ``(angle, x, y)`` rows, on ``like``'s device."""
    p = torch.from_numpy(params).to(like.device)
    return AffineBatch(
        scale=torch.ones(p.shape[0], dtype=p.dtype, device=p.device),
        angle_deg=p[:, 0],
        shift_px=p[:, 1:],
    )


def _even(half: float, n: int) -> tuple[float, ...]:
    if n == 1:
        return (0.0,)
    return tuple(float(v) for v in np.linspace(-half, half, n))


def attack_preset(name: AttackPreset | str, **overrides: Any) -> AttackConfig:
    """A preset's :class:`AttackConfig`, with ``overrides`` (``seed``, ``k``, ...).

    Raises:
        EvalInputError: an unknown name (the message lists the presets).
    """
    try:
        preset = AttackPreset(name)
    except ValueError:
        choices = [p.value for p in AttackPreset]
        close = difflib.get_close_matches(str(name), choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise EvalInputError(f"unknown preset {name!r}; valid: {choices}.{hint}") from None
    settings: dict[str, Any] = {"max_angle_deg": 30.0, "grid": (31, 5, 5), "k": 10}
    if preset is AttackPreset.ENGSTROM_IMAGENET:
        settings |= {"max_shift_px": None, "max_shift_fraction": 3 / 28}
    else:
        settings |= {"max_shift_px": 3.0}
    if preset is AttackPreset.ENGSTROM_CIFAR:
        settings |= {"canvas_pad": 16}
    return AttackConfig(**(settings | overrides | {"preset": preset.value}))
