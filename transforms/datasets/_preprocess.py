"""Preprocessing as the model saw its inputs in training: decode, resize, centre crop.

The order of an evaluation is fixed and recorded in every result (``docs/CONVENTION.md``):

    decode → [0, 1] float → resize (shorter side) → centre crop → the sweep's transform →
    (x - mean) / std → model

:class:`Preprocess` holds the resize and crop; :func:`decode_image_file` turns one file into
a ``(C, H, W)`` float image in [0, 1] with the channels the model takes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["PREPROCESS_ORDER", "Preprocess", "decode_image_file"]

PREPROCESS_ORDER = (
    "decode",
    "to_float_0_1",
    "resize_shorter_side",
    "centre_crop",
    "sweep_transform",
    "normalise",
    "model",
)


class DecodeError(ValueError):
    """A file that Pillow does not decode."""


@dataclass(frozen=True)
class Preprocess:
    """Resize and centre crop applied to each image before the sweep's transform.

    Attributes:
        resize: Resize the shorter side to this many pixels, the longer side in proportion
            (``int(resize * long / short)``), bilinear with antialias: the semantics of
            torchvision's ``Resize(resize)``. ``None``: keep the size.
        crop: ``(height, width)`` of the centre crop (torchvision's ``CenterCrop``
            placement, top = ``round((H - h) / 2)``); ``None``: no crop. A crop larger than
            the (resized) image is an error, never padding.
    """

    resize: int | None = None
    crop: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.resize is not None and (
            isinstance(self.resize, bool) or not isinstance(self.resize, int) or self.resize < 1
        ):
            raise ValueError(f"resize must be an int >= 1 or None; got {self.resize!r}")
        if self.crop is not None:
            crop = tuple(self.crop)
            if len(crop) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in crop
            ):
                raise ValueError(f"crop must be (height, width) of ints >= 1; got {self.crop!r}")
            object.__setattr__(self, "crop", crop)

    @property
    def is_identity(self) -> bool:
        return self.resize is None and self.crop is None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H, W)`` of an image of ``height × width`` after resize and crop."""
        if self.resize is not None:
            short, long = sorted((height, width))
            new_long = int(self.resize * long / short)
            height, width = (self.resize, new_long) if height <= width else (new_long, self.resize)
        return self.crop if self.crop is not None else (height, width)

    def __call__(self, image: Tensor, *, name: str = "the image") -> Tensor:
        """Resize and crop float ``(C, H, W)`` or ``(B, C, H, W)`` images.

        Raises:
            ValueError: the crop is larger than the resized image (the message names
                ``name`` and both sizes).
        """
        from torchvision.transforms.v2 import functional as F

        if self.resize is not None:
            image = F.resize(
                image,
                [self.resize],
                interpolation=F.InterpolationMode.BILINEAR,
                antialias=True,
            )
        if self.crop is not None:
            h, w = image.shape[-2:]
            ch, cw = self.crop
            if ch > h or cw > w:
                resized = f" resized to {h}×{w}" if self.resize is not None else f" of {h}×{w}"
                raise ValueError(
                    f"crop {ch}×{cw} is larger than {name}{resized}; use a smaller crop or a "
                    f"larger resize (resize >= {max(ch, cw)})"
                )
            top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
            image = image[..., top : top + ch, left : left + cw]
        return image

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocess`` record of a result: the order and each step's settings."""
        return {
            "order": list(PREPROCESS_ORDER),
            "to_float": "uint8 / 255 (16-bit: / 65535)",
            "resize_shorter_side": self.resize,
            "resize_interpolation": "bilinear, antialias (torchvision Resize)"
            if self.resize is not None
            else None,
            "centre_crop": None if self.crop is None else list(self.crop),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        crop = data.get("centre_crop")
        return cls(data.get("resize_shorter_side"), None if crop is None else tuple(crop))


def _decode_bytes(raw: bytes) -> Tensor:
    """``(C, H, W)`` uint8 (16-bit grey: uint16) tensor of an encoded image, with its
    stored channels (grey, grey + alpha, RGB or RGBA), decoded by Pillow."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.array(img, dtype=np.int64).clip(0, 65535).astype(np.uint16)
            else:
                if img.mode not in ("L", "LA", "RGB", "RGBA"):
                    grey = img.mode in ("1", "P") and _palette_is_grey(img)
                    img = img.convert("L" if grey else "RGBA" if "A" in img.getbands() else "RGB")
                array = np.array(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DecodeError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def _palette_is_grey(img) -> bool:
    if img.mode == "1":
        return True
    palette = img.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))


def decode_image_file(
    path: str | os.PathLike[str], *, channels: int, grey: bool = False
) -> tuple[Tensor, bool]:
    """Decode one file to a float32 ``(channels, H, W)`` image in [0, 1].

    Grey images get their channel repeated for a 3-channel model; colour images become
    grey (``0.2989 R + 0.587 G + 0.114 B``, torchvision's ``rgb_to_grayscale``) only with
    ``grey=True``. An alpha channel is dropped (not composited), as Pillow's
    ``convert("RGB")`` in torchvision's ``ImageFolder`` does.

    Returns:
        ``(image, was_colour)``.

    Raises:
        DecodeError: the file does not decode.
        ValueError: a colour image for a 1-channel model without ``grey``.
    """
    with open(path, "rb") as f:
        raw = f.read()
    stored = _decode_bytes(raw)
    scale = 65535.0 if stored.dtype == torch.uint16 else 255.0
    c = stored.shape[0]
    colour = c >= 3
    x = stored[:3] if colour else stored[:1]
    x = x.to(torch.float32).div_(scale)
    if channels == 3 and not colour:
        x = x.expand(3, -1, -1).contiguous()
    elif channels == 1 and colour:
        if not grey:
            raise ValueError(
                f"{os.fspath(path)} is a colour image but the model takes 1 channel; pass "
                "grey=True to convert colour images to grey"
            )
        weights = torch.tensor([0.2989, 0.587, 0.114]).view(3, 1, 1)
        x = (x * weights).sum(dim=0, keepdim=True).clamp_(0.0, 1.0)
    return x, colour
