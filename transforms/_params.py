"""Parameter objects: one transform point (:class:`AffineParams`) and a batch of them.

Both follow the suite's convention (see :mod:`transforms` and ``docs/CONVENTION.md``):
``scale`` is an isotropic zoom about the image centre (1 = identity, < 1 shrinks the
content), ``angle_deg`` is a rotation about the centre in degrees, positive =
counter-clockwise as displayed, and ``shift_px`` is ``(x, y)`` in pixels, x right,
y down, applied after scale and rotation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["AffineBatch", "AffineParams"]


def _finite_float(value: Any, *, name: str, valid: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {valid}; got {value}")
    return value


MAX_ABS = 1e6
"""Angles (degrees) and shifts (pixels) must be smaller than this in magnitude: beyond it a
value is not a physical transform of an image (and float precision of the angle is gone)."""


@dataclass(frozen=True)
class AffineParams:
    """One point of the transform space: scale, rotation and shift of an image.

    Convention:
        The forward map of an image point ``p = (x, y)`` (pixel coordinates, centre
        ``c = ((W - 1) / 2, (H - 1) / 2)``) is
        ``p' = c + scale · R(angle_deg) · (p - c) + shift_px`` with
        ``R(a) = [[cos a, sin a], [-sin a, cos a]]`` in (x right, y down) coordinates:
        scale and rotation about the centre, then the shift.

    Attributes:
        scale: Isotropic zoom factor about the centre; finite and > 0. 1 is identity.
        angle_deg: Rotation in degrees, positive = counter-clockwise as displayed; finite.
        shift_px: ``(x, y)`` translation in pixels, x right, y down; finite.

    Raises:
        ValueError: a value is out of range (the message names it and the valid range).
        TypeError: a value is not a real number.
    """

    scale: float = 1.0
    angle_deg: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        scale = _finite_float(self.scale, name="scale", valid="finite and > 0")
        if scale <= 0:
            raise ValueError(f"scale must be finite and > 0; got {scale}")
        angle = _finite_float(self.angle_deg, name="angle_deg", valid="finite (degrees)")
        if abs(angle) >= MAX_ABS:
            raise ValueError(
                f"angle_deg must be a finite angle in degrees with |angle| < {MAX_ABS:g}; "
                f"got {angle:g}"
            )
        shift = self.shift_px
        if isinstance(shift, Tensor):
            shift = shift.tolist()
        if isinstance(shift, (str, bytes)) or not isinstance(shift, Sequence) or len(shift) != 2:
            raise ValueError(
                f"shift_px must be a pair (x, y) of finite pixel shifts; got {shift!r}"
            )
        sx = _finite_float(shift[0], name="shift_px[0] (x)", valid="finite (pixels)")
        sy = _finite_float(shift[1], name="shift_px[1] (y)", valid="finite (pixels)")
        if max(abs(sx), abs(sy)) >= MAX_ABS:
            raise ValueError(
                f"shift_px must be finite pixel shifts with |shift| < {MAX_ABS:g} px; got "
                f"({sx:g}, {sy:g})"
            )
        # Normalise -0.0 to 0.0 so that equal points compare and serialise equally.
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "angle_deg", angle + 0.0)
        object.__setattr__(self, "shift_px", (sx + 0.0, sy + 0.0))

    @property
    def is_identity(self) -> bool:
        """Whether this point leaves every image unchanged (bit-exactly, in :func:`affine`)."""
        return self.scale == 1.0 and self.angle_deg % 360.0 == 0.0 and self.shift_px == (0.0, 0.0)

    def inverse(self) -> AffineParams:
        """The point that undoes this one: ``p = c + (1/s) R(-a) (p' - c - t)``."""
        cos, sin = _cos_sin_deg(-self.angle_deg)
        tx, ty = self.shift_px
        inv = 1.0 / self.scale
        # R(-a) t in (x right, y down) coordinates, then scaled and negated.
        rx = cos * tx + sin * ty
        ry = -sin * tx + cos * ty
        return AffineParams(inv, -self.angle_deg, (-inv * rx, -inv * ry))

    def then(self, other: AffineParams) -> AffineParams:
        """The point equal to applying ``self`` first and ``other`` second."""
        cos, sin = _cos_sin_deg(other.angle_deg)
        tx, ty = self.shift_px
        rx = cos * tx + sin * ty
        ry = -sin * tx + cos * ty
        ox, oy = other.shift_px
        return AffineParams(
            self.scale * other.scale,
            self.angle_deg + other.angle_deg,
            (other.scale * rx + ox, other.scale * ry + oy),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys."""
        return {"scale": self.scale, "angle_deg": self.angle_deg, "shift_px": list(self.shift_px)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AffineParams:
        """Inverse of :meth:`to_dict`; missing keys take the identity value."""
        unknown = set(data) - {"scale", "angle_deg", "shift_px"}
        if unknown:
            raise ValueError(
                f"unknown AffineParams field(s) {sorted(unknown)}; "
                "expected 'scale', 'angle_deg', 'shift_px'"
            )
        return cls(
            data.get("scale", 1.0),
            data.get("angle_deg", 0.0),
            tuple(data.get("shift_px", (0.0, 0.0))),
        )

    def label(self) -> str:
        """A short human-readable label, e.g. ``'scale=0.5'`` or ``'angle=30°, shift=(2, 0)px'``."""
        parts = []
        if self.scale != 1.0:
            parts.append(f"scale={self.scale:g}")
        if self.angle_deg != 0.0:
            parts.append(f"angle={self.angle_deg:g}°")
        if self.shift_px != (0.0, 0.0):
            parts.append(f"shift=({self.shift_px[0]:g}, {self.shift_px[1]:g})px")
        return ", ".join(parts) if parts else "identity"


def _cos_sin_deg(angle_deg: float) -> tuple[float, float]:
    """cos and sin of an angle in degrees, exact (0, ±1) at multiples of 90°."""
    quarter, rem = divmod(angle_deg, 90.0)
    if rem == 0.0:
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(quarter) % 4]
    rad = math.radians(angle_deg)
    return math.cos(rad), math.sin(rad)


@dataclass(frozen=True)
class AffineBatch:
    """Per-image transform parameters for a batch of ``B`` images.

    Attributes:
        scale: ``(B,)`` zoom factors, finite and > 0.
        angle_deg: ``(B,)`` rotations in degrees, positive = counter-clockwise as displayed.
        shift_px: ``(B, 2)`` shifts ``(x, y)`` in pixels, x right, y down.

    All three are floating tensors on one device. Validation runs at construction.
    """

    scale: Tensor
    angle_deg: Tensor
    shift_px: Tensor

    def __post_init__(self) -> None:
        for name, value, ndim in (
            ("scale", self.scale, 1),
            ("angle_deg", self.angle_deg, 1),
            ("shift_px", self.shift_px, 2),
        ):
            if not isinstance(value, Tensor):
                raise TypeError(f"AffineBatch.{name} must be a tensor; got {type(value).__name__}")
            if not value.is_floating_point():
                raise TypeError(f"AffineBatch.{name} must be a floating tensor; got {value.dtype}")
            if value.ndim != ndim:
                shape = "(B,)" if ndim == 1 else "(B, 2)"
                raise ValueError(
                    f"AffineBatch.{name} must have shape {shape}; got {tuple(value.shape)}"
                )
        n = self.scale.shape[0]
        if self.angle_deg.shape[0] != n or self.shift_px.shape != (n, 2):
            raise ValueError(
                "AffineBatch fields disagree on the batch size: scale "
                f"{tuple(self.scale.shape)}, angle_deg {tuple(self.angle_deg.shape)}, "
                f"shift_px {tuple(self.shift_px.shape)}; expected (B,), (B,), (B, 2)"
            )
        check_batch_values(self.scale, self.angle_deg, self.shift_px)

    def __len__(self) -> int:
        return int(self.scale.shape[0])

    def __getitem__(self, index: int) -> AffineParams:
        return AffineParams(
            float(self.scale[index]),
            float(self.angle_deg[index]),
            (float(self.shift_px[index, 0]), float(self.shift_px[index, 1])),
        )

    def __iter__(self) -> Iterator[AffineParams]:
        for i in range(len(self)):
            yield self[i]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy on ``device`` / in ``dtype`` (either may be None to keep it)."""
        return AffineBatch(
            self.scale.to(device=device, dtype=dtype),
            self.angle_deg.to(device=device, dtype=dtype),
            self.shift_px.to(device=device, dtype=dtype),
        )

    @classmethod
    def from_points(
        cls,
        points: Sequence[AffineParams],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> AffineBatch:
        """Stack points into a batch (float64 by default, so values are kept exactly)."""
        return cls(
            torch.tensor([p.scale for p in points], dtype=dtype, device=device),
            torch.tensor([p.angle_deg for p in points], dtype=dtype, device=device),
            torch.tensor([p.shift_px for p in points], dtype=dtype, device=device).reshape(-1, 2),
        )

    @classmethod
    def repeat(
        cls,
        point: AffineParams,
        n: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> AffineBatch:
        """``n`` copies of one point."""
        return cls(
            torch.full((n,), point.scale, dtype=dtype, device=device),
            torch.full((n,), point.angle_deg, dtype=dtype, device=device),
            torch.tensor(point.shift_px, dtype=dtype, device=device).expand(n, 2).clone(),
        )


def check_batch_values(scale: Tensor, angle_deg: Tensor, shift_px: Tensor) -> None:
    """Raise ``ValueError`` naming the first parameter with a non-finite or out-of-range value."""
    if scale.numel() and not bool(torch.isfinite(scale).all() & (scale > 0).all()):
        bad = scale[~(torch.isfinite(scale) & (scale > 0))].flatten()[0].item()
        raise ValueError(f"scale must be finite and > 0; got {bad}")
    if angle_deg.numel() and not bool(torch.isfinite(angle_deg).all()):
        bad = angle_deg[~torch.isfinite(angle_deg)].flatten()[0].item()
        raise ValueError(f"angle_deg must be finite (degrees); got {bad}")
    if shift_px.numel() and not bool(torch.isfinite(shift_px).all()):
        bad = shift_px[~torch.isfinite(shift_px)].flatten()[0].item()
        raise ValueError(f"shift_px must be finite (pixels); got {bad}")
