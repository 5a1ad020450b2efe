"""``mnist-cnn`` and its DCNv2 twin ``mnist-cnn-dcnv2`` (the scaled-MNIST comparison model)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from torch import Tensor, nn

from ._common import ConvFactory, check_images, check_int, make_head
from ._deform import deform_factory
from ._registry import register_model

__all__ = ["MnistCnn"]

_WIDTH = 32
_LAYERS = 5


class MnistCnn(nn.Module):
    """Five 3×3 convolutions, global average pooling and one linear layer.

    ``conv1`` (C→32) → ReLU → 2×2 max-pool → ``conv2`` (32→32) → ReLU → 2×2 max-pool →
    ``conv3``, ``conv4``, ``conv5`` (32→32, each followed by ReLU) → global average pool →
    ``fc`` (32→classes). All convolutions have padding 1 and a bias.

    Args:
        in_channels: Input channels.
        num_classes: Output classes; 0 returns the pooled ``(B, 32)`` features.
        conv: Factory of the regular convolutions.
        deform_conv: Factory of the convolutions listed in ``deformable``.
        deformable: Which of ``conv1`` … ``conv5`` (1-based) use ``deform_conv``.
        device, dtype: Of the parameters.

    Shape:
        ``(B, C, H, W)`` with ``H, W >= 4`` → ``(B, num_classes)``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        conv: ConvFactory = nn.Conv2d,
        deform_conv: ConvFactory | None = None,
        deformable: Collection[int] = (),
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        bad = sorted(set(deformable) - set(range(1, _LAYERS + 1)))
        if bad:
            raise ValueError(f"deformable layers must be in 1..{_LAYERS}; got {bad}")
        if deformable and deform_conv is None:
            raise ValueError("deformable layers need a deform_conv factory")
        self.in_channels = check_int(in_channels, name="in_channels", minimum=1)
        self.num_classes = check_int(num_classes, name="num_classes", minimum=0)
        self.num_features = _WIDTH
        kw = {"device": device, "dtype": dtype}
        for i in range(1, _LAYERS + 1):
            factory = deform_conv if i in deformable else conv
            c_in = in_channels if i == 1 else _WIDTH
            self.add_module(f"conv{i}", factory(c_in, _WIDTH, 3, padding=1, bias=True, **kw))
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = make_head(_WIDTH, num_classes, **kw)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → pooled features ``(B, 32)``."""
        check_images(x, in_channels=self.in_channels, model=type(self).__name__)
        if min(x.shape[-2:]) < 4:
            raise ValueError(f"MnistCnn needs inputs of at least 4x4; got {tuple(x.shape)}")
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = self.conv3(x).relu()
        x = self.conv4(x).relu()
        x = self.conv5(x).relu()
        return self.gap(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        return self.fc(self.forward_features(x))


def _check_size(input_size: tuple[int, int]) -> None:
    if min(input_size) < 4:
        raise ValueError(f"mnist-cnn needs input_size of at least 4x4; got {input_size}")


@register_model("mnist-cnn", input_shape=(1, 28, 28))
def mnist_cnn(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
) -> MnistCnn:
    """5-conv CNN with global average pooling (scaled-MNIST baseline)."""
    _check_size(input_size)
    return MnistCnn(in_channels=in_channels, num_classes=num_classes, device=device, dtype=dtype)


@register_model("mnist-cnn-dcnv2", input_shape=(1, 28, 28), twin_of="mnist-cnn")
def mnist_cnn_dcnv2(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
    modulated: bool = True,
    offset_bound: float | None = None,
    offset_bound_frac: float | None = None,
) -> MnistCnn:
    """mnist-cnn with conv4 and conv5 deformable (DCNv2).

    ``offset_bound_frac=0.25`` clamps offsets to ``±max(H, W)/4`` as the published
    scaled-MNIST model does; ``modulated=False`` gives DCNv1.
    """
    _check_size(input_size)
    return MnistCnn(
        in_channels=in_channels,
        num_classes=num_classes,
        deform_conv=deform_factory(
            modulated=modulated, offset_bound=offset_bound, offset_bound_frac=offset_bound_frac
        ),
        deformable=(4, 5),
        device=device,
        dtype=dtype,
    )
