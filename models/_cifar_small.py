"""``cifar-small`` and its deformable twin ``cifar-small-dcn`` (DCNv1 as the original)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._common import ConvFactory, check_images, check_int, make_head
from ._deform import deform_factory
from ._registry import register_model

__all__ = ["CifarSmall"]


def _feature_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size after conv1 (k3) → max-pool 2 → conv2 (k2) → avg-pool 2."""
    return tuple(((s - 2) // 2 - 1) // 2 for s in input_size)  # type: ignore[return-value]


class CifarSmall(nn.Module):
    """Two convolutions and three linear layers with leaky ReLU.

    ``conv1`` (C→40, 3×3) → leaky ReLU → 2×2 max-pool → ``conv2`` (40→25, 2×2) → leaky
    ReLU → 2×2 average pool → flatten → ``fc1`` (25·h·w→300) → leaky ReLU → ``fc2``
    (300→100) → leaky ReLU → ``fc3`` (100→classes). No padding; for 32×32 inputs
    ``h = w = 7``.

    Args:
        in_channels: Input channels.
        num_classes: Output classes; 0 returns the ``(B, 100)`` features before ``fc3``.
        input_size: ``(H, W)`` the model is built for (it fixes ``fc1``); ``>= 8``.
        conv: Factory of both convolutions (``nn.Conv2d`` or a deformable block).
        negative_slope: Of the leaky ReLUs.
        device, dtype: Of the parameters.

    Shape:
        ``(B, C, H, W)`` with ``(H, W) == input_size`` → ``(B, num_classes)``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        input_size: tuple[int, int],
        conv: ConvFactory = nn.Conv2d,
        negative_slope: float = 0.01,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, name="in_channels", minimum=1)
        self.num_classes = check_int(num_classes, name="num_classes", minimum=0)
        self.input_size = tuple(input_size)
        fh, fw = _feature_size(self.input_size)  # type: ignore[arg-type]
        if min(fh, fw) < 1:
            raise ValueError(f"cifar-small needs input_size of at least 8x8; got {input_size}")
        self.num_features = 100
        kw = {"device": device, "dtype": dtype}
        self.conv1 = conv(in_channels, 40, 3, padding=0, bias=True, **kw)
        self.conv2 = conv(40, 25, 2, padding=0, bias=True, **kw)
        self.max_pool = nn.MaxPool2d(2)
        self.avg_pool = nn.AvgPool2d(2)
        self.act = nn.LeakyReLU(negative_slope)
        self.fc1 = nn.Linear(25 * fh * fw, 300, **kw)
        self.fc2 = nn.Linear(300, 100, **kw)
        self.fc3 = make_head(100, num_classes, **kw)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, 100)`` features (after ``fc2`` and its activation)."""
        check_images(x, in_channels=self.in_channels, size=self.input_size, model="cifar-small")
        x = self.max_pool(self.act(self.conv1(x)))
        x = self.avg_pool(self.act(self.conv2(x)))
        x = self.act(self.fc1(x.flatten(1)))
        return self.act(self.fc2(x))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        return self.fc3(self.forward_features(x))


@register_model("cifar-small", input_shape=(3, 32, 32))
def cifar_small(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
) -> CifarSmall:
    """2-conv, 3-linear CNN with leaky ReLU (small CIFAR baseline)."""
    return CifarSmall(
        in_channels=in_channels,
        num_classes=num_classes,
        input_size=input_size,
        device=device,
        dtype=dtype,
    )


@register_model("cifar-small-dcn", input_shape=(3, 32, 32), twin_of="cifar-small")
def cifar_small_dcn(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
    modulated: bool = False,
    offset_bound: float | None = None,
    offset_bound_frac: float | None = None,
) -> CifarSmall:
    """cifar-small with both convolutions deformable (DCNv1; modulated=True for DCNv2)."""
    return CifarSmall(
        in_channels=in_channels,
        num_classes=num_classes,
        input_size=input_size,
        conv=deform_factory(
            modulated=modulated, offset_bound=offset_bound, offset_bound_frac=offset_bound_frac
        ),
        device=device,
        dtype=dtype,
    )
