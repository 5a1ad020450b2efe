"""Training augmentation drawn from the transform library, parsed from ``--augment`` strings.

``"scale=0.5:1.5,rotation=-30:30,shift=-2:2"`` means: zoom factors uniform in [0.5, 1.5],
angles uniform in [-30°, 30°], and shifts uniform in [-2, 2] px along x and along y, each
drawn per image from ``(seed, epoch, dataset index)`` by
:class:`geomrobust.transforms.AffineSampler` (so a resumed run draws the same parameters, and the
global RNG is never touched).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from geomrobust.transforms import AffineSampler, RandomAffine, ShiftDistribution

__all__ = ["AugmentSpec", "parse_augment"]

_KEYS = ("scale", "rotation", "shift")
_EXAMPLE = "'scale=0.5:1.5,rotation=-30:30,shift=-2:2'"


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of the random affine augmentation (each ``(low, high)``, identity by default).

    Attributes:
        scale: Zoom factors, ``0 < low <= high``.
        angle_deg: Rotation angles in degrees, counter-clockwise as displayed.
        shift_px: Shifts in pixels, drawn independently along x and along y.
    """

    scale: tuple[float, float] = (1.0, 1.0)
    angle_deg: tuple[float, float] = (0.0, 0.0)
    shift_px: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("scale", "angle_deg", "shift_px"):
            value = getattr(self, name)
            if (
                not isinstance(value, tuple | list)
                or len(value) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            ):
                raise TypeError(f"AugmentSpec.{name} must be a (low, high) pair; got {value!r}")
            low, high = float(value[0]), float(value[1])
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(
                    f"AugmentSpec.{name} must be finite with low <= high; got ({low}, {high})"
                )
            object.__setattr__(self, name, (low, high))
        if self.scale[0] <= 0:
            raise ValueError(f"AugmentSpec.scale must lie in (0, inf); got {self.scale}")

    @property
    def is_identity(self) -> bool:
        """Whether every draw is the identity (no augmentation)."""
        return (
            self.scale == (1.0, 1.0)
            and self.angle_deg == (0.0, 0.0)
            and self.shift_px
            == (
                0.0,
                0.0,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"scale": [lo, hi], "angle_deg": [...], "shift_px": [...]}``."""
        return {
            "scale": list(self.scale),
            "angle_deg": list(self.angle_deg),
            "shift_px": list(self.shift_px),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: tuple(v) for k, v in data.items()})

    def module(self, *, seed: int) -> RandomAffine:
        """A :class:`geomrobust.transforms.RandomAffine` drawing from these ranges with ``seed``."""
        shift = ShiftDistribution.box(self.shift_px, self.shift_px)
        sampler = AffineSampler(
            scale=self.scale, angle_deg=self.angle_deg, shift=shift, generator=seed
        )
        return RandomAffine(sampler)

    def apply(self, images: Tensor, indices: Tensor, *, seed: int, epoch: int) -> Tensor:
        """Warp ``images`` (``(B, C, H, W)`` in [0, 1]) with the draws of their dataset
        ``indices`` (``(B,)``) at ``epoch``; the identity returns ``images`` unchanged."""
        if self.is_identity:
            return images
        return self.module(seed=seed)(images, indices, epoch=epoch)


def parse_augment(text: str | None, *, name: str = "augment") -> AugmentSpec | None:
    """Parse ``"scale=LO:HI,rotation=LO:HI,shift=LO:HI"`` (any subset, any order).

    Args:
        text: The string; ``None``, ``""`` or ``"none"`` mean no augmentation.
        name: Parameter name for error messages.

    Returns:
        An :class:`AugmentSpec`, or ``None`` for no augmentation.

    Raises:
        ValueError: an unknown key, a repeated key, a malformed range, ``low > high``, or a
            scale ``<= 0``; the message names ``name``, the item and the expected form.
    """
    if text is None or text.strip().lower() in ("", "none"):
        return None
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str; got {type(text).__name__}")
    fields: dict[str, tuple[float, float]] = {}
    target = {"scale": "scale", "rotation": "angle_deg", "shift": "shift_px"}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        key = key.strip().lower()
        if not sep or key not in _KEYS:
            raise ValueError(
                f"{name}: expected KEY=LOW:HIGH items with KEY in {list(_KEYS)}, comma-separated "
                f"(e.g. {_EXAMPLE}); got {item.strip()!r}"
            )
        if target[key] in fields:
            raise ValueError(f"{name}: {key!r} is given twice in {text!r}")
        parts = value.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            low, high = (float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"{name}: {key} must be LOW:HIGH, two numbers (e.g. {key}="
                f"{'0.5:1.5' if key == 'scale' else '-30:30'}); got {value.strip()!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(
                f"{name}: {key} needs finite LOW <= HIGH; got {value.strip()!r} "
                f"(write {key}={min(low, high):g}:{max(low, high):g}?)"
            )
        if key == "scale" and low <= 0:
            raise ValueError(f"{name}: scale factors must be > 0; got {value.strip()!r}")
        fields[target[key]] = (low, high)
    spec = AugmentSpec(**fields)
    return None if spec.is_identity else spec
