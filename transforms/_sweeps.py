"""Sweeps and grids of transform points: named presets and ranges parsed from strings.

Ranges are computed in decimal arithmetic, so ``"0.5:1.5:0.1"`` gives exactly the floats
``0.5, 0.6, ..., 1.5`` that those literals denote (not ``0.6000000000000001``).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from ._params import AffineParams

__all__ = [
    "Sweep",
    "SweepPreset",
    "get_sweep",
    "make_sweep",
    "parse_range",
    "parse_shifts",
    "product_shifts",
]

MAX_POINTS = 100_000
_AXES = ("scale", "angle_deg", "shift_px")


class SweepPreset(StrEnum):
    """Named sweeps.

    * ``scale``: 0.5 to 1.5 in steps of 0.1 (11 points).
    * ``rotation``: -180° to 180° in steps of 15° (25 points; ±180° are the same turn and
      are both kept so curves close).
    * ``translation``: shifts of -6 to 6 px in steps of 2 along x, and the same along y
      (13 points, the identity once).
    * ``scale-rotation``: the product grid of ``scale`` and ``rotation`` (275 points).
    * ``cifar-p-rotate``, ``cifar-p-scale``, ``cifar-p-translate``: the frames of the
      geometric sequences of CIFAR-10-P (Hendrycks & Dietterich 2019,
      ``hendrycks/robustness`` ``ImageNet-P/create_p/make_cifar_p.py``), in this suite's
      convention: angles 15° down to -15° in steps of 1° (31 frames; torchvision turns
      positive angles clockwise), scales 0.70 to 1.30 in steps of 0.02 (31), x shifts -7
      to 8 px (16). Their flip probability is the published FP (``docs/PROTOCOLS.md``).
    * ``diagonal-shift-1px``: the identity and a shift of the content by one pixel up and
      left, the pair of Azulay & Weiss (2019); its flip probability is their
      P(top-1 change).
    """

    SCALE = "scale"
    ROTATION = "rotation"
    TRANSLATION = "translation"
    SCALE_ROTATION = "scale-rotation"
    CIFAR_P_ROTATE = "cifar-p-rotate"
    CIFAR_P_SCALE = "cifar-p-scale"
    CIFAR_P_TRANSLATE = "cifar-p-translate"
    DIAGONAL_SHIFT_1PX = "diagonal-shift-1px"


@dataclass(frozen=True)
class Sweep:
    """An ordered set of transform points to evaluate.

    Attributes:
        name: Preset name or ``"custom"``.
        points: The points, in evaluation order; no duplicates unless the preset says so.
        axes: Which of ``scale``, ``angle_deg``, ``shift_px`` vary across the points.
    """

    name: str
    points: tuple[AffineParams, ...]
    axes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"sweep {self.name!r} has no points")
        if len(self.points) > MAX_POINTS:
            raise ValueError(
                f"sweep {self.name!r} has {len(self.points)} points; at most {MAX_POINTS}"
            )
        if not all(isinstance(p, AffineParams) for p in self.points):
            raise TypeError("sweep points must be AffineParams")
        unknown = set(self.axes) - set(_AXES)
        if unknown:
            raise ValueError(f"unknown sweep axes {sorted(unknown)}; valid: {list(_AXES)}")
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(self, "axes", tuple(self.axes))

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[AffineParams]:
        return iter(self.points)

    @property
    def is_sequence(self) -> bool:
        """Whether the points are one ordered sequence: they lie on one line in
        ``(scale, angle_deg, shift_x, shift_y)`` (one parameter varies, or several in
        proportion, as a diagonal shift), so consecutive points are neighbours. A product
        grid or a cross of x and y shifts is not; a single point is not."""
        if len(self.points) < 2:
            return False
        coords = [(p.scale, p.angle_deg, *p.shift_px) for p in self.points]
        base = coords[0]
        direction = None
        for c in coords[1:]:
            d = tuple(a - b for a, b in zip(c, base, strict=True))
            if not any(d):
                continue
            if direction is None:
                direction = d
                continue
            # collinear iff every 2×2 minor of (direction, d) vanishes
            for i in range(4):
                for j in range(i + 1, 4):
                    cross = direction[i] * d[j] - direction[j] * d[i]
                    if abs(cross) > 1e-9 * (1 + max(map(abs, direction + d))) ** 2:
                        return False
        return direction is not None

    @property
    def identity_index(self) -> int | None:
        """Index of the identity point, or None if the sweep does not contain it."""
        return next((i for i, p in enumerate(self.points) if p.is_identity), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "axes": list(self.axes),
            "points": [p.to_dict() for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sweep:
        return cls(
            data["name"],
            tuple(AffineParams.from_dict(p) for p in data["points"]),
            tuple(data["axes"]),
        )


def _decimal(text: str, *, name: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{name}: {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name}: values must be finite; got {text.strip()!r}")
    return value


def parse_range(spec: str | float | Sequence[float], *, name: str = "range") -> tuple[float, ...]:
    """Parse ``"start:stop:step"`` (stop included when on the grid), ``"a,b,c"`` or one value.

    Args:
        spec: The string, a number, or already a sequence of numbers.
        name: Parameter name for error messages (e.g. ``"--scales"``).

    Returns:
        The values as floats, computed in decimal arithmetic.

    Raises:
        ValueError: malformed string, zero step, a step pointing away from stop, or more than
            100,000 values. The message names ``name`` and shows the expected form.
    """
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return (float(spec),)
    if not isinstance(spec, str):
        return tuple(float(_decimal(str(v), name=name)) for v in spec)
    text = spec.strip()
    if not text:
        raise ValueError(f"{name}: empty; expected 'start:stop:step', 'a,b,c' or one number")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(
                f"{name}: expected 'start:stop:step' (e.g. '0.5:1.5:0.1'); got {text!r}"
            )
        start, stop, step = (_decimal(p, name=name) for p in parts)
        if step == 0:
            raise ValueError(f"{name}: step must be non-zero; got {text!r}")
        try:
            if (stop - start) * step < 0:
                raise ValueError(
                    f"{name}: step {step} goes away from stop {stop} (start {start}); "
                    f"use a step of sign {'+' if stop > start else '-'}"
                )
            count = int((stop - start) / step) + 1
        except ArithmeticError:  # decimal.Overflow / InvalidOperation: absurd magnitudes
            count = MAX_POINTS + 1
        if count > MAX_POINTS:
            raise ValueError(
                f"{name}: {text!r} gives more than {MAX_POINTS} values; expected "
                "'start:stop:step' with at most that many (e.g. '0.5:1.5:0.1')"
            )
        return tuple(float(start + i * step) for i in range(count))
    return tuple(float(_decimal(p, name=name)) for p in text.split(","))


def parse_shifts(spec: str | Sequence[tuple[float, float]], *, name: str = "shifts"):
    """Parse shifts in pixels.

    ``"x,y;x,y;..."`` lists pairs (a single pair needs the ``;``: ``"2,0;"``); a range or a
    list of single values (``"-4:4:2"``, ``"-2,2"``) gives the cross of those shifts along x
    and along y, with ``(0, 0)`` once.
    """
    if not isinstance(spec, str):
        return tuple((float(x), float(y)) for x, y in spec)
    text = spec.strip()
    if ";" in text:
        pairs = []
        for item in filter(None, (s.strip() for s in text.split(";"))):
            xy = item.split(",")
            if len(xy) != 2:
                raise ValueError(f"{name}: expected 'x,y;x,y' pairs; got {item!r}")
            pairs.append(tuple(float(_decimal(v, name=name)) for v in xy))
        return tuple(pairs)
    values = parse_range(text, name=name)
    out: list[tuple[float, float]] = [(v, 0.0) for v in values]
    out += [(0.0, v) for v in values if v != 0.0]
    if (0.0, 0.0) not in out:
        out.insert(0, (0.0, 0.0))
    return tuple(dict.fromkeys(out))


def make_sweep(
    *,
    scales: Sequence[float] = (1.0,),
    angles: Sequence[float] = (0.0,),
    shifts: Sequence[tuple[float, float]] = ((0.0, 0.0),),
    name: str = "custom",
) -> Sweep:
    """The product grid ``scales × angles × shifts`` (scale varies slowest)."""
    points = tuple(
        AffineParams(s, a, tuple(t)) for s, a, t in itertools.product(scales, angles, shifts)
    )
    points = tuple(dict.fromkeys(points))
    axes = tuple(
        axis
        for axis, values in zip(_AXES, (scales, angles, shifts), strict=True)
        if len(set(map(_hashable, values))) > 1
    )
    return Sweep(name, points, axes)


def product_shifts(
    shifts_x: Sequence[float] = (0.0,), shifts_y: Sequence[float] = (0.0,)
) -> tuple[tuple[float, float], ...]:
    """The shifts ``x × y`` in pixels, x varying slowest: with :func:`make_sweep`, the full
    product grid is ordered scales, angles, x shifts, y shifts (outermost first)."""
    return tuple((float(x), float(y)) for x in shifts_x for y in shifts_y)


def _hashable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def get_sweep(name: SweepPreset | str) -> Sweep:
    """A named preset (see :class:`SweepPreset`); unknown names list the valid ones."""
    if isinstance(name, str) and not isinstance(name, SweepPreset):
        choices = [p.value for p in SweepPreset]
        if name not in choices:
            close = difflib.get_close_matches(name, choices, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown sweep {name!r}; valid sweeps: {choices}.{hint}")
        name = SweepPreset(name)
    if name is SweepPreset.CIFAR_P_ROTATE:
        return make_sweep(angles=parse_range("15:-15:-1"), name=name.value)
    if name is SweepPreset.CIFAR_P_SCALE:
        return make_sweep(scales=parse_range("0.7:1.3:0.02"), name=name.value)
    if name is SweepPreset.CIFAR_P_TRANSLATE:
        return make_sweep(shifts=product_shifts(parse_range("-7:8:1")), name=name.value)
    if name is SweepPreset.DIAGONAL_SHIFT_1PX:
        return make_sweep(shifts=((0.0, 0.0), (-1.0, -1.0)), name=name.value)
    scales = parse_range("0.5:1.5:0.1")
    angles = parse_range("-180:180:15")
    if name is SweepPreset.SCALE:
        return make_sweep(scales=scales, name=name.value)
    if name is SweepPreset.ROTATION:
        # ±180° coincide; AffineParams keeps them distinct points, as the preset promises.
        return make_sweep(angles=angles, name=name.value)
    if name is SweepPreset.TRANSLATION:
        return make_sweep(shifts=parse_shifts("-6:6:2"), name=name.value)
    return make_sweep(scales=scales, angles=angles, name=name.value)
