"""Thin ``nn.Module`` wrappers: each one builds parameters and calls :func:`affine`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor, nn

from ._functional import FillLike, check_images, warp
from ._options import Interpolation, Padding, parse_choice
from ._params import AffineBatch, AffineParams
from ._sampling import AffineSampler

__all__ = ["RandomAffine", "Warp"]


class Warp(nn.Module):
    """Apply one fixed transform point to every image (the sweeps' case).

    Args:
        params: The point; see :class:`AffineParams` for the convention.
        interpolation, padding, fill: As in :func:`geomrobust.transforms.affine`.
    """

    def __init__(
        self,
        params: AffineParams,
        *,
        interpolation: Interpolation | str = Interpolation.BILINEAR,
        padding: Padding | str = Padding.ZEROS,
        fill: FillLike = None,
    ) -> None:
        super().__init__()
        if not isinstance(params, AffineParams):
            raise TypeError(f"params must be AffineParams; got {type(params).__name__}")
        self.params = params
        self.interpolation = parse_choice(Interpolation, interpolation, name="interpolation")
        self.padding = parse_choice(Padding, padding, name="padding")
        self.fill = fill

    def forward(self, images: Tensor) -> Tensor:
        return warp(
            images,
            self.params,
            interpolation=self.interpolation,
            padding=self.padding,
            fill=self.fill,
        )

    def extra_repr(self) -> str:
        return f"{self.params.label()}, interpolation={self.interpolation.value}"


class RandomAffine(nn.Module):
    """Random scale / rotation / shift per image, keyed by the images' dataset indices.

    Args:
        sampler: Draws the parameters (see :class:`AffineSampler`).
        interpolation, padding, fill: As in :func:`geomrobust.transforms.affine`.

    ``forward(images, indices=..., epoch=...)`` draws image ``indices[k]``'s parameters for
    ``images[k]``; ``forward(images, params=...)`` replays given parameters instead.
    """

    def __init__(
        self,
        sampler: AffineSampler,
        *,
        interpolation: Interpolation | str = Interpolation.BILINEAR,
        padding: Padding | str = Padding.ZEROS,
        fill: FillLike = None,
    ) -> None:
        super().__init__()
        if not isinstance(sampler, AffineSampler):
            raise TypeError(f"sampler must be an AffineSampler; got {type(sampler).__name__}")
        self.sampler = sampler
        self.interpolation = parse_choice(Interpolation, interpolation, name="interpolation")
        self.padding = parse_choice(Padding, padding, name="padding")
        self.fill = fill

    def sample(
        self, images: Tensor, indices: Tensor | Sequence[int] | np.ndarray, *, epoch: int = 0
    ) -> AffineBatch:
        """The parameters ``forward`` would apply, on the images' device."""
        check_images(images)
        params = self.sampler(indices, size=tuple(images.shape[-2:]), epoch=epoch)
        if len(params) != images.shape[0]:
            raise ValueError(
                f"got {len(params)} indices for a batch of B={images.shape[0]} images; "
                "pass one dataset index per image"
            )
        return params.to(images.device)

    def forward(
        self,
        images: Tensor,
        indices: Tensor | Sequence[int] | np.ndarray | None = None,
        *,
        epoch: int = 0,
        params: AffineBatch | None = None,
    ) -> Tensor:
        if params is None:
            if indices is None:
                raise ValueError(
                    "RandomAffine needs the images' dataset indices (indices=...) so that each "
                    "image's parameters do not depend on the batch; or pass params=..."
                )
            params = self.sample(images, indices, epoch=epoch)
        return warp(
            images, params, interpolation=self.interpolation, padding=self.padding, fill=self.fill
        )
