"""Transformation-classification pairs: an image and a transformed copy, labelled by which
kinds of transform were applied.

Pair ``k`` is a pure function of ``(seed, k)``: its class is ``k % num_classes`` (so classes
are balanced), its source image and its magnitudes come from index-keyed draws
(:mod:`geomrobust.transforms._rng`). Magnitudes are drawn away from the identity so that the classes
can be told apart.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._functional import warp
from .._options import Interpolation, Padding, parse_choice
from .._params import AffineBatch
from .._rng import SeedLike, as_indices, keyed_uniform, resolve_seed
from .._sampling import AffineSampler, IntervalSet, ShiftDistribution
from ._dataset import ImageDataset

__all__ = ["PairClass", "PairConfig", "TransformPairs"]

_STREAM_SOURCE = 101


class PairClass(IntEnum):
    """Which transforms a pair's second image went through."""

    NONE = 0
    DISPLACEMENT = 1
    ROTATION = 2
    SCALING = 3
    DISPLACEMENT_ROTATION = 4
    DISPLACEMENT_SCALING = 5
    ROTATION_SCALING = 6
    ALL = 7

    @property
    def parts(self) -> tuple[bool, bool, bool]:
        """``(displacement, rotation, scaling)`` flags."""
        return _PARTS[self]


_PARTS = {
    PairClass.NONE: (False, False, False),
    PairClass.DISPLACEMENT: (True, False, False),
    PairClass.ROTATION: (False, True, False),
    PairClass.SCALING: (False, False, True),
    PairClass.DISPLACEMENT_ROTATION: (True, True, False),
    PairClass.DISPLACEMENT_SCALING: (True, False, True),
    PairClass.ROTATION_SCALING: (False, True, True),
    PairClass.ALL: (True, True, True),
}


@dataclass(frozen=True)
class PairConfig:
    """How pairs are drawn.

    Attributes:
        num_classes: 7 (classes 0–6) or 8 (adds ``ALL``, all three transforms).
        angle_deg: Rotation magnitudes, as ranges; default ``|angle|`` in 15°–30°.
        scale: Zoom factors; default [0.7, 0.85] ∪ [1.15, 1.4].
        shift_fraction: Shift length as a fraction of the image side, in a uniformly
            random direction; default 10–20 %.
        crop: Crop both images of every pair (all classes alike, so the crop tells nothing
            about the class) to the largest centred square that every rotation in
            ``angle_deg`` keeps free of padding (:meth:`crop_box`), then resize back to the
            original size, so that a rotation alone is not betrayed by black corners. The
            crop hides the padding of rotations only: a displacement (padding along the edge
            the content moves away from) or a scale < 1 (padding around the shrunk content,
            mostly when rotated too) can still show padding inside the crop.
        interpolation, padding: Warp options (see :func:`geomrobust.transforms.affine`).
    """

    num_classes: int = 7
    angle_deg: tuple[tuple[float, float], ...] = ((-30.0, -15.0), (15.0, 30.0))
    scale: tuple[tuple[float, float], ...] = ((0.7, 0.85), (1.15, 1.4))
    shift_fraction: tuple[float, float] = (0.1, 0.2)
    crop: bool = False
    interpolation: Interpolation = Interpolation.BILINEAR
    padding: Padding = Padding.ZEROS

    def __post_init__(self) -> None:
        if self.num_classes not in (7, 8):
            raise ValueError(f"num_classes must be 7 or 8; got {self.num_classes}")
        angles = IntervalSet.of(self.angle_deg).intervals
        scales = IntervalSet.of(self.scale).intervals
        if any(lo <= 0.0 <= hi for lo, hi in angles):
            raise ValueError(
                f"angle_deg ranges must exclude 0 (a rotation pair must rotate); got {angles}"
            )
        if min(lo for lo, _ in scales) <= 0 or any(lo <= 1.0 <= hi for lo, hi in scales):
            raise ValueError(f"scale ranges must be > 0 and exclude 1; got {scales}")
        shift = IntervalSet.of(self.shift_fraction).intervals
        if len(shift) != 1 or shift[0][0] <= 0:
            raise ValueError(
                "shift_fraction must be one range (low, high) with low > 0 (a displacement "
                f"must move); got {self.shift_fraction!r}"
            )
        object.__setattr__(self, "angle_deg", angles)
        object.__setattr__(self, "scale", scales)
        object.__setattr__(self, "shift_fraction", shift[0])
        interp = parse_choice(Interpolation, self.interpolation, name="interpolation")
        object.__setattr__(self, "interpolation", interp)
        object.__setattr__(self, "padding", parse_choice(Padding, self.padding, name="padding"))

    def crop_side(self, size: int) -> int:
        """Side of the centred square that every rotation in ``angle_deg`` keeps free of
        padding, for square images of side ``size``.

        Pixel centres sit at integer coordinates and the centre at ``(size - 1) / 2``
        (``align_corners=False``), so an image's pixel centres span ``size - 1`` px and a
        crop's span ``side - 1``; a rotation by ``a`` widens the crop's span by
        ``|cos a| + |sin a|``, and the widest must fit in the image's:
        ``side = floor((size - 1) / max(|cos a| + |sin a|)) + 1``, less one if ``size - side``
        is odd, so that the crop is centred (equal margins). At least 1 (``size`` odd) or 2
        (``size`` even), the smallest centred squares.
        """
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be an int >= 1; got {size!r}")

        def spread(deg: float) -> float:
            rad = math.radians(deg)
            return abs(math.cos(rad)) + abs(math.sin(rad))

        worst = 1.0
        for lo, hi in self.angle_deg:
            candidates = [lo, hi] + [
                45.0 + 90.0 * k for k in range(-4, 5) if lo <= 45.0 + 90.0 * k <= hi
            ]
            worst = max(worst, *(spread(a) for a in candidates))
        side = math.floor((size - 1) / worst) + 1
        side -= (size - side) % 2
        return int(max(side, 2 - size % 2))

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, crop_height, crop_width)`` of the crop of ``height × width`` images:
        the centred square of :meth:`crop_side` ``(min(height, width))``, one pixel narrower
        along the other axis when that axis's parity differs (so it stays centred and free
        of padding). The margins are equal: ``height - top - crop_height == top``, and
        likewise for ``left``."""
        side = self.crop_side(min(height, width))

        def along(size: int) -> int:
            if (size - side) % 2 == 0:
                return side
            return side - 1 if side > 1 else side + 1

        crop_h, crop_w = along(height), along(width)
        return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


class TransformPairs(torch.utils.data.Dataset):
    """``num_pairs`` pairs drawn from ``source``; item ``k`` is
    ``(original (C, H, W), transformed (C, H, W), class)``.

    Args:
        source: Images to draw from (e.g. a test split).
        num_pairs: How many pairs.
        config: Magnitudes and options (:class:`PairConfig`).
        generator: ``torch.Generator``, ``int`` seed or ``None``.
    """

    def __init__(
        self,
        source: ImageDataset,
        num_pairs: int,
        *,
        config: PairConfig | None = None,
        generator: SeedLike = None,
    ) -> None:
        if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 0:
            raise ValueError(f"num_pairs must be an int >= 0; got {num_pairs!r}")
        if len(source) == 0:
            raise ValueError("source has no images to draw pairs from")
        self.source = source
        self.num_pairs = num_pairs
        self.config = config or PairConfig()
        self.seed = resolve_seed(generator)
        cfg = self.config
        self._sampler = AffineSampler(
            scale=cfg.scale,
            angle_deg=cfg.angle_deg,
            shift=ShiftDistribution.polar(cfg.shift_fraction, unit="fraction"),
            generator=self.seed,
        )

    def __len__(self) -> int:
        return self.num_pairs

    def __getitem__(self, k: int) -> tuple[Tensor, Tensor, int]:
        if not -self.num_pairs <= k < self.num_pairs:
            raise IndexError(f"index {k} out of range for {self.num_pairs} pairs")
        a, b, y, _ = self.batch([k % self.num_pairs])
        return a[0], b[0], int(y[0])

    def labels(self, indices) -> Tensor:
        """The class of each pair: ``k % num_classes``."""
        return torch.from_numpy(as_indices(indices) % self.config.num_classes)

    def params(self, indices) -> tuple[Tensor, AffineBatch]:
        """Source image index and transform parameters of each pair."""
        idx = as_indices(indices)
        if idx.size and idx.max() >= self.num_pairs:
            raise IndexError(f"pair index {int(idx.max())} out of range for {self.num_pairs} pairs")
        n_src = len(self.source)
        u = keyed_uniform(self.seed, idx, stream=_STREAM_SOURCE)
        src = np.minimum((u * n_src).astype(np.int64), n_src - 1)
        h, w = self.source.images.shape[-2:]
        drawn = self._sampler(idx, size=(h, w))
        parts = np.array([PairClass(c).parts for c in idx % self.config.num_classes]).reshape(-1, 3)
        shift_on, rot_on, scale_on = (torch.from_numpy(parts[:, i]) for i in range(3))
        params = AffineBatch(
            torch.where(scale_on, drawn.scale, 1.0),
            torch.where(rot_on, drawn.angle_deg, 0.0),
            torch.where(shift_on[:, None], drawn.shift_px, 0.0),
        )
        return torch.from_numpy(src), params

    def batch(self, indices) -> tuple[Tensor, Tensor, Tensor, AffineBatch]:
        """``(originals, transformed, classes, params)`` of the pairs at ``indices``."""
        src, params = self.params(indices)
        originals = self.source.images[src]
        cfg = self.config
        transformed = warp(originals, params, interpolation=cfg.interpolation, padding=cfg.padding)
        if cfg.crop:
            originals, transformed = self._crop(originals), self._crop(transformed)
        return originals, transformed, self.labels(indices), params

    def _crop(self, images: Tensor) -> Tensor:
        h, w = images.shape[-2:]
        top, left, crop_h, crop_w = self.config.crop_box(h, w)
        crop = images[..., top : top + crop_h, left : left + crop_w]
        return F.interpolate(
            crop, size=(h, w), mode="bilinear", align_corners=False, antialias=False
        )
