"""``resnet18-cifar`` and ``resnet34-cifar``: ResNets for 32×32 inputs, optionally deformable.

The CIFAR variant (He et al. 2016, as commonly used for CIFAR-10): a 3×3 stride-1 stem
without max-pool, four stages of basic blocks (64, 128, 256, 512 channels; stride 2 from
the second stage on), BatchNorm after every convolution, global average pooling, one linear
layer. ``deformable_stages`` swaps the 3×3 convolutions of the listed stages for
deformable ones; the DCNv2 paper puts them in the later stages (``(2, 3, 4)`` here, its
conv3–conv5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ._common import ConvFactory, check_images, check_int, make_head
from ._deform import deform_factory
from ._registry import register_model

__all__ = ["BasicBlock", "ResNetCifar"]

_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and a shortcut (1×1 conv + BN when shapes change).

    Args:
        in_planes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution (and of the shortcut).
        conv: Factory of the two 3×3 convolutions; the shortcut is always ``nn.Conv2d``.
        device, dtype: Of the parameters.
    """

    def __init__(
        self,
        in_planes: int,
        planes: int,
        *,
        stride: int = 1,
        conv: ConvFactory = nn.Conv2d,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.conv1 = conv(in_planes, planes, 3, stride=stride, padding=1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(planes, **kw)
        self.conv2 = conv(planes, planes, 3, stride=1, padding=1, bias=False, **kw)
        self.bn2 = nn.BatchNorm2d(planes, **kw)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False, **kw),
                nn.BatchNorm2d(planes, **kw),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNetCifar(nn.Module):
    """ResNet with a 3×3 stem for small inputs.

    Args:
        blocks: Basic blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        in_channels: Input channels.
        num_classes: Output classes; 0 returns the pooled ``(B, 512)`` features.
        deformable_stages: Stages (1-based) whose 3×3 convolutions use ``deform_conv``.
        deform_conv: Factory of the deformable convolutions.
        device, dtype: Of the parameters.

    Shape:
        ``(B, C, H, W)`` → ``(B, num_classes)``; any ``H, W`` works (32×32 is the design
        size; the last stage then runs at 4×4).
    """

    def __init__(
        self,
        blocks: Sequence[int],
        *,
        in_channels: int,
        num_classes: int,
        deformable_stages: Sequence[int] = (),
        deform_conv: ConvFactory | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, name="in_channels", minimum=1)
        self.num_classes = check_int(num_classes, name="num_classes", minimum=0)
        stages = _check_stages(deformable_stages)
        if stages and deform_conv is None:
            raise ValueError("deformable_stages need a deform_conv factory")
        self.deformable_stages = stages
        self.num_features = _WIDTHS[-1]
        kw = {"device": device, "dtype": dtype}
        self.conv1 = nn.Conv2d(in_channels, _WIDTHS[0], 3, padding=1, bias=False, **kw)
        self.bn1 = nn.BatchNorm2d(_WIDTHS[0], **kw)
        in_planes = _WIDTHS[0]
        for i, (count, planes) in enumerate(zip(blocks, _WIDTHS, strict=True), start=1):
            conv = deform_conv if i in stages else nn.Conv2d
            layer = []
            for j in range(count):
                stride = 2 if (j == 0 and i > 1) else 1
                layer.append(BasicBlock(in_planes, planes, stride=stride, conv=conv, **kw))
                in_planes = planes
            self.add_module(f"layer{i}", nn.Sequential(*layer))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = make_head(self.num_features, num_classes, **kw)

    def forward_features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → pooled features ``(B, 512)``."""
        check_images(x, in_channels=self.in_channels, model=type(self).__name__)
        x = self.bn1(self.conv1(x)).relu()
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.gap(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → logits ``(B, num_classes)``."""
        return self.fc(self.forward_features(x))


def _check_stages(stages: Any) -> tuple[int, ...]:
    if isinstance(stages, str | bytes) or not isinstance(stages, Sequence):
        raise TypeError(f"deformable_stages must be a sequence of ints in 1..4; got {stages!r}")
    out = tuple(check_int(s, name="deformable_stages[...]", minimum=1) for s in stages)
    bad = sorted(s for s in out if s > len(_WIDTHS))
    if bad or len(set(out)) != len(out):
        raise ValueError(f"deformable_stages must be distinct ints in 1..4; got {list(stages)}")
    return tuple(sorted(out))


def _build(
    blocks: tuple[int, ...],
    *,
    in_channels: int,
    num_classes: int,
    device: Any,
    dtype: Any,
    deformable_stages: Sequence[int],
    modulated: bool,
    offset_bound: float | None,
    offset_bound_frac: float | None,
) -> ResNetCifar:
    stages = _check_stages(deformable_stages)
    factory = (
        deform_factory(
            modulated=modulated, offset_bound=offset_bound, offset_bound_frac=offset_bound_frac
        )
        if stages
        else None
    )
    return ResNetCifar(
        blocks,
        in_channels=in_channels,
        num_classes=num_classes,
        deformable_stages=stages,
        deform_conv=factory,
        device=device,
        dtype=dtype,
    )


@register_model("resnet18-cifar", input_shape=(3, 32, 32))
def resnet18_cifar(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
    deformable_stages: Sequence[int] = (),
    modulated: bool = True,
    offset_bound: float | None = None,
    offset_bound_frac: float | None = None,
) -> ResNetCifar:
    """ResNet-18 with a 3x3 stem for 32x32 inputs; deformable_stages=(2, 3, 4) for DCNv2."""
    return _build(
        (2, 2, 2, 2),
        in_channels=in_channels,
        num_classes=num_classes,
        device=device,
        dtype=dtype,
        deformable_stages=deformable_stages,
        modulated=modulated,
        offset_bound=offset_bound,
        offset_bound_frac=offset_bound_frac,
    )


@register_model("resnet34-cifar", input_shape=(3, 32, 32))
def resnet34_cifar(
    *,
    in_channels: int,
    num_classes: int,
    input_size: tuple[int, int],
    device: Any = None,
    dtype: Any = None,
    deformable_stages: Sequence[int] = (),
    modulated: bool = True,
    offset_bound: float | None = None,
    offset_bound_frac: float | None = None,
) -> ResNetCifar:
    """ResNet-34 with a 3x3 stem for 32x32 inputs; deformable_stages=(2, 3, 4) for DCNv2."""
    return _build(
        (3, 4, 6, 3),
        in_channels=in_channels,
        num_classes=num_classes,
        device=device,
        dtype=dtype,
        deformable_stages=deformable_stages,
        modulated=modulated,
        offset_bound=offset_bound,
        offset_bound_frac=offset_bound_frac,
    )
