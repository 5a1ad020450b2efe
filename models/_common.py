"""Shared pieces of the model package: argument and input checks, heads, conv factories."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "ConvFactory",
    "check_images",
    "check_int",
    "check_pair",
    "make_head",
]


class ConvFactory(Protocol):
    """Anything that builds a 2-D convolution the way ``nn.Conv2d`` is called.

    ``nn.Conv2d`` and ``functools.partial(DeformConv2dBlock, ...)`` both qualify; a DCN twin
    is its regular model with this one factory swapped.
    """

    def __call__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = ...,
        padding: int | tuple[int, int] = ...,
        bias: bool = ...,
        device: Any = ...,
        dtype: Any = ...,
    ) -> nn.Module: ...


def check_int(value: Any, *, name: str, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` or raise ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}")
    return int(value)


def check_pair(value: Any, *, name: str, minimum: int = 0) -> tuple[int, int]:
    """An int or a pair of ints as ``(h, w)``, each ``>= minimum``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (check_int(value, name=name, minimum=minimum),) * 2
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return (
            check_int(value[0], name=f"{name}[0]", minimum=minimum),
            check_int(value[1], name=f"{name}[1]", minimum=minimum),
        )
    raise TypeError(f"{name} must be an int or a pair (h, w) of ints >= {minimum}; got {value!r}")


def check_bound(value: Any, *, name: str) -> float | None:
    """``None`` or a finite float > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float > 0 or None; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite float > 0 or None; got {value}")
    return value


def check_images(
    images: Any,
    *,
    in_channels: int,
    size: tuple[int, int] | None = None,
    name: str = "images",
    model: str = "the model",
) -> None:
    """Raise unless ``images`` is a floating ``(B, in_channels, H, W)`` tensor.

    Args:
        images: The input to check.
        in_channels: The channel count the model was built for.
        size: The ``(H, W)`` the model needs, or ``None`` if any size works.
        name: The argument's name in messages.
        model: The model's name in messages.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(images).__name__}")
    if images.ndim != 4:
        hint = f" For a single image use {name}.unsqueeze(0)." if images.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W); got {tuple(images.shape)}.{hint}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor; got {images.dtype}. "
            "Convert uint8 images with images.float() / 255."
        )
    if images.shape[1] != in_channels:
        raise ValueError(
            f"{model} was built for {in_channels} input channel(s); {name} has "
            f"{images.shape[1]} (shape {tuple(images.shape)}). Build it with "
            f"in_channels={images.shape[1]} or convert the images."
        )
    if size is not None and tuple(images.shape[-2:]) != tuple(size):
        h, w = images.shape[-2:]
        raise ValueError(
            f"{model} was built for {size[0]}x{size[1]} inputs; {name} are {h}x{w}. "
            f"Build it with input_size=({h}, {w}) or resize the images."
        )


def make_head(
    in_features: int, num_classes: int, *, device: Any = None, dtype: Any = None
) -> nn.Module:
    """``nn.Linear(in_features, num_classes)``, or ``nn.Identity()`` when ``num_classes`` is 0.

    ``num_classes=0`` turns a classifier into a feature extractor returning
    ``(B, in_features)``, as :class:`PairNet` uses its encoder.
    """
    if num_classes == 0:
        return nn.Identity()
    return nn.Linear(in_features, num_classes, device=device, dtype=dtype)


def resolve_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means the current default device."""
    if device is None:
        return torch.get_default_device()
    return torch.device(device)


Builder = Callable[..., nn.Module]
