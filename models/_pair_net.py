"""``pair-net``: a siamese classifier of transformation pairs (which transform turned a into b)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ._common import check_images, check_int, make_head
from ._registry import _entry, build_model, register_model

__all__ = ["PairNet"]


class PairNet(nn.Module):
    """One shared encoder on both images, combined features, an MLP head.

    ``f_a = encoder(a)``, ``f_b = encoder(b)`` (the same weights), then
    ``z = [f_a, f_b, f_a - f_b, f_a · f_b]`` (concatenation, difference, product; the
    difference keeps the order of the pair, so "zoom in" and "zoom out" differ), then
    ``fc1`` (4·D→hidden) → ReLU → ``fc2`` (hidden→classes).

    Args:
        encoder: A module mapping ``(B, C, H, W)`` to ``(B, D)`` features; it must have
            ``in_channels`` and ``num_features`` attributes (every registry classifier
            built with ``num_classes=0`` does).
        num_classes: Output classes; 0 returns ``z`` after ``fc1`` and ReLU.
        hidden: Width of the head's hidden layer.
        device, dtype: Of the head's parameters.

    Shape:
        ``forward(a, b)``: ``a`` (original) and ``b`` (transformed), each ``(B, C, H, W)``
        → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        num_classes: int = 7,
        hidden: int = 128,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        for attr in ("in_channels", "num_features"):
            if not isinstance(getattr(encoder, attr, None), int):
                raise TypeError(f"encoder must have an int attribute {attr!r}")
        self.encoder = encoder
        self.in_channels = encoder.in_channels
        self.num_classes = check_int(num_classes, name="num_classes", minimum=0)
        self.hidden = check_int(hidden, name="hidden", minimum=1)
        d = int(encoder.num_features)
        kw = {"device": device, "dtype": dtype}
        self.fc1 = nn.Linear(4 * d, hidden, **kw)
        self.fc2 = make_head(hidden, num_classes, **kw)
        self.num_features = hidden

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """``a``, ``b`` ``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        check_images(a, in_channels=self.in_channels, name="a", model="pair-net")
        check_images(b, in_channels=self.in_channels, name="b", model="pair-net")
        if a.shape != b.shape:
            raise ValueError(
                f"pair-net needs a and b of the same shape; got {tuple(a.shape)} and "
                f"{tuple(b.shape)}"
            )
        # One encoder pass over both halves: the same weights, BatchNorm sees both.
        f = self.encoder(torch.cat([a, b]))
        fa, fb = f[: a.shape[0]], f[a.shape[0] :]
        z = torch.cat([fa, fb, fa - fb, fa * fb], dim=1)
        return self.fc2(self.fc1(z).relu())


@register_model("pair-net", input_shape=(1, 28, 28), num_classes=7, num_inputs=2)
def pair_net(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
    encoder: str = "mnist-cnn",
    encoder_options: Mapping[str, Any] | None = None,
    hidden: int = 128,
) -> PairNet:
    """Siamese classifier of (original, transformed) pairs over 7 transform classes.

    ``encoder`` names a registered single-image model (e.g. ``mnist-cnn-dcnv2`` for the
    deformable twin), built with ``num_classes=0`` and ``encoder_options``.
    """
    if not isinstance(encoder, str):
        raise TypeError(f"encoder must be a registered model name; got {encoder!r}")
    if _entry(encoder).num_inputs != 1:
        raise ValueError(f"encoder must be a single-image model; {encoder!r} takes pairs")
    options = dict(encoder_options or {})
    reserved = sorted(
        {"in_channels", "num_classes", "input_size", "device", "dtype"} & set(options)
    )
    if reserved:
        raise ValueError(
            f"encoder_options must not set {reserved}; pair-net passes its own in_channels "
            "and input_size, and builds the encoder with num_classes=0"
        )
    enc = build_model(
        encoder,
        in_channels=in_channels,
        num_classes=0,
        input_size=input_size,
        device=device,
        dtype=dtype,
        **options,
    )
    return PairNet(enc, num_classes=num_classes, hidden=hidden, device=device, dtype=dtype)
