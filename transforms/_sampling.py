"""Random transform parameters for augmentation and pair generation, keyed by image index.

A :class:`AffineSampler` maps ``(seed, epoch, index)`` to the parameters of image ``index``:
the same whatever the batch size, the order of calls, the number of workers or the device.
It draws on the CPU (see :mod:`geomrobust.transforms._rng`) and never touches the global torch RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
from torch import Tensor

from ._options import parse_choice
from ._params import AffineBatch
from ._rng import SeedLike, as_indices, keyed_uniform, resolve_seed

__all__ = ["AffineSampler", "IntervalSet", "ShiftDistribution", "ShiftMode", "ShiftUnit"]

# Streams keep the quantities independent of each other.
_STREAM_SCALE, _STREAM_ANGLE, _STREAM_SHIFT_A, _STREAM_SHIFT_B = 1, 2, 3, 4


@dataclass(frozen=True)
class IntervalSet:
    """A union of closed intervals ``[low, high]`` to draw uniformly from.

    A draw picks an interval with probability proportional to its length, then a uniform
    value inside it. If every interval has zero length (fixed values), each is picked with
    equal probability.

    Examples:
        ``IntervalSet.of(1.0)`` (always 1), ``IntervalSet.of((0.5, 1.5))``,
        ``IntervalSet.of([(0.7, 0.85), (1.15, 1.4)])`` (away from identity).
    """

    intervals: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.intervals:
            raise ValueError("IntervalSet needs at least one interval (low, high)")
        clean = []
        for pair in self.intervals:
            if len(pair) != 2:
                raise ValueError(f"each interval must be (low, high); got {pair!r}")
            low, high = float(pair[0]), float(pair[1])
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"interval bounds must be finite; got ({low}, {high})")
            if low > high:
                raise ValueError(f"interval low must be <= high; got ({low}, {high})")
            clean.append((low, high))
        object.__setattr__(self, "intervals", tuple(clean))

    @classmethod
    def of(cls, spec: float | tuple[float, float] | Sequence[tuple[float, float]] | IntervalSet):
        """Build from a number, one ``(low, high)`` pair or a sequence of pairs."""
        if isinstance(spec, IntervalSet):
            return spec
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls(((float(spec), float(spec)),))
        if (
            isinstance(spec, Sequence)
            and len(spec) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
        ):
            return cls(((float(spec[0]), float(spec[1])),))
        if isinstance(spec, Sequence):
            return cls(tuple(tuple(p) for p in spec))
        raise TypeError(f"expected a number, a (low, high) pair or a list of pairs; got {spec!r}")

    @property
    def low(self) -> float:
        return min(lo for lo, _ in self.intervals)

    @property
    def high(self) -> float:
        return max(hi for _, hi in self.intervals)

    def sample(self, u_pick: np.ndarray, u_value: np.ndarray) -> np.ndarray:
        """Map two arrays of uniforms in ``[0, 1)`` to values of the set."""
        lows = np.array([lo for lo, _ in self.intervals])
        widths = np.array([hi - lo for lo, hi in self.intervals])
        total = widths.sum()
        weights = widths / total if total > 0 else np.full(len(widths), 1.0 / len(widths))
        edges = np.cumsum(weights)
        pick = np.minimum(np.searchsorted(edges, u_pick, side="right"), len(edges) - 1)
        return lows[pick] + widths[pick] * u_value

    def contains(self, values: np.ndarray | Tensor) -> bool:
        """Whether every value lies in one of the intervals."""
        v = np.asarray(values.cpu() if isinstance(values, Tensor) else values, dtype=np.float64)
        inside = np.zeros(v.shape, dtype=bool)
        for lo, hi in self.intervals:
            inside |= (v >= lo) & (v <= hi)
        return bool(inside.all())


class ShiftMode(StrEnum):
    """``BOX``: x and y drawn independently; ``POLAR``: a length and a uniform direction."""

    BOX = "box"
    POLAR = "polar"


class ShiftUnit(StrEnum):
    """``PX``: pixels; ``FRACTION``: x as a fraction of the width, y of the height."""

    PX = "px"
    FRACTION = "fraction"


@dataclass(frozen=True)
class ShiftDistribution:
    """How shifts are drawn.

    Attributes:
        mode: ``box`` draws ``x`` from ``a`` and ``y`` from ``b``; ``polar`` draws a length
            from ``a`` and a direction uniform on the circle (``b`` unused).
        a: x range (box) or length range (polar).
        b: y range (box).
        unit: ``px`` or ``fraction`` of the image side (x of W, y of H).
    """

    mode: ShiftMode = ShiftMode.BOX
    a: IntervalSet = field(default_factory=lambda: IntervalSet.of(0.0))
    b: IntervalSet = field(default_factory=lambda: IntervalSet.of(0.0))
    unit: ShiftUnit = ShiftUnit.PX

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_choice(ShiftMode, self.mode, name="shift mode"))
        object.__setattr__(self, "unit", parse_choice(ShiftUnit, self.unit, name="shift unit"))
        object.__setattr__(self, "a", IntervalSet.of(self.a))
        object.__setattr__(self, "b", IntervalSet.of(self.b))
        if self.mode is ShiftMode.POLAR and self.a.low < 0:
            raise ValueError(f"polar shift lengths must be >= 0; got low={self.a.low}")

    @classmethod
    def box(cls, x=0.0, y=0.0, *, unit: ShiftUnit | str = ShiftUnit.PX) -> ShiftDistribution:
        """Independent x and y ranges."""
        return cls(ShiftMode.BOX, IntervalSet.of(x), IntervalSet.of(y), unit)

    @classmethod
    def polar(cls, length, *, unit: ShiftUnit | str = ShiftUnit.PX) -> ShiftDistribution:
        """A length range and a uniformly random direction."""
        return cls(ShiftMode.POLAR, IntervalSet.of(length), IntervalSet.of(0.0), unit)

    @property
    def is_zero(self) -> bool:
        return self.a.intervals == ((0.0, 0.0),) and (
            self.mode is ShiftMode.POLAR or self.b.intervals == ((0.0, 0.0),)
        )


class AffineSampler:
    """Draw per-image scale, angle and shift, deterministically from ``(seed, epoch, index)``.

    Args:
        scale: Zoom factors to draw from: a number, ``(low, high)`` or a list of ranges.
        angle_deg: Angles in degrees to draw from, same forms; a list of ranges keeps
            draws away from zero, e.g. ``[(-30, -15), (15, 30)]``.
        shift: A :class:`ShiftDistribution` (default: no shift).
        generator: ``torch.Generator``, ``int`` seed or ``None`` (a fresh OS seed).

    Example:
        >>> sampler = AffineSampler(scale=(0.5, 1.5), angle_deg=(-30, 30), generator=0)
        >>> params = sampler(torch.arange(4))      # images 0..3
        >>> params[2] == sampler([2])[0]           # the same whatever the batch
        True
    """

    def __init__(
        self,
        *,
        scale=1.0,
        angle_deg=0.0,
        shift: ShiftDistribution | None = None,
        generator: SeedLike = None,
    ) -> None:
        self.scale = IntervalSet.of(scale)
        if self.scale.low <= 0:
            raise ValueError(f"scale range must lie in (0, inf); got low={self.scale.low}")
        self.angle_deg = IntervalSet.of(angle_deg)
        self.shift = shift if shift is not None else ShiftDistribution()
        if not isinstance(self.shift, ShiftDistribution):
            raise TypeError(f"shift must be a ShiftDistribution; got {type(shift).__name__}")
        self.seed = resolve_seed(generator)

    def __repr__(self) -> str:
        return (
            f"AffineSampler(scale={self.scale.intervals}, angle_deg={self.angle_deg.intervals}, "
            f"shift={self.shift}, seed={self.seed})"
        )

    def __call__(
        self,
        indices: Tensor | Sequence[int] | np.ndarray | int,
        *,
        size: tuple[int, int] | None = None,
        epoch: int = 0,
        device: torch.device | str | None = None,
    ) -> AffineBatch:
        """Parameters for the images at ``indices``.

        Args:
            indices: Item indices (a tensor, a sequence, or a count ``n`` for ``0..n-1``).
            size: ``(H, W)``; required when shifts are fractions of the image size.
            epoch: Augmentation epoch: each epoch draws new parameters.
            device: Device of the returned tensors (drawn on the CPU, then moved).

        Returns:
            An :class:`AffineBatch` in float64 (exact values), one entry per index.
        """
        idx = as_indices(indices)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0; got {epoch!r}")

        def u(stream: int) -> np.ndarray:
            return keyed_uniform(self.seed, idx, stream=stream, epoch=epoch)

        scale = self.scale.sample(u(_STREAM_SCALE * 8), u(_STREAM_SCALE * 8 + 1))
        angle = self.angle_deg.sample(u(_STREAM_ANGLE * 8), u(_STREAM_ANGLE * 8 + 1))
        shift = self._shift(u, len(idx), size)
        return AffineBatch(
            torch.from_numpy(scale).to(device),
            torch.from_numpy(angle).to(device),
            torch.from_numpy(shift).to(device),
        )

    def _shift(self, u, n: int, size: tuple[int, int] | None) -> np.ndarray:
        dist = self.shift
        if dist.is_zero:
            return np.zeros((n, 2))
        a = dist.a.sample(u(_STREAM_SHIFT_A * 8), u(_STREAM_SHIFT_A * 8 + 1))
        if dist.mode is ShiftMode.POLAR:
            theta = 2.0 * math.pi * u(_STREAM_SHIFT_B * 8)
            xy = np.stack([a * np.cos(theta), a * np.sin(theta)], axis=1)
        else:
            b = dist.b.sample(u(_STREAM_SHIFT_B * 8), u(_STREAM_SHIFT_B * 8 + 1))
            xy = np.stack([a, b], axis=1)
        if dist.unit is ShiftUnit.FRACTION:
            if size is None:
                raise ValueError("shifts are fractions of the image size: pass size=(H, W)")
            h, w = size
            xy = xy * np.array([w, h], dtype=np.float64)
        return xy
