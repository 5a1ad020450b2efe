"""Deformable convolution (DCNv2, or DCNv1 without modulation) as a drop-in ``nn.Conv2d``.

The block owns its offset (and modulation) predictors, so a model swaps ``nn.Conv2d`` for
:class:`DeformConv2dBlock` and nothing else changes. At initialisation the predictors are
zero, the offsets are 0 and the modulation is ``2 · sigmoid(0) = 1``, so the block computes
exactly its regular convolution (to float rounding; different kernels sum in different
orders).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.ops
from torch import Tensor, nn
from torch.nn import init

from ._common import ConvFactory, check_bound, check_int, check_pair, resolve_device
from ._deform_native import auto_kernel, deform_conv2d_native

__all__ = ["DEFORM_IMPLS", "DeformConv2dBlock", "deform_factory", "deform_kernels"]

DeformFn = Callable[..., Tensor]


def _auto_impl(device: torch.device) -> str:
    """What ``impl="auto"`` runs on ``device`` (for ``groups=1``, as in the blocks): the native
    implementation on CPU (where it trains about ten times faster than torchvision's kernel,
    ``benchmarks/dcn.py``), torchvision's compiled kernel elsewhere."""
    return "native" if device.type == "cpu" else "torchvision"


def _auto(input: Tensor, offset: Tensor, weight: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """The faster implementation for the input's device (:func:`_auto_impl`); torchvision's
    kernel for grouped convolutions."""
    if _auto_impl(input.device) == "native" and weight.shape[1] == input.shape[1]:
        return deform_conv2d_native(input, offset, weight, *args, **kwargs)
    return torchvision.ops.deform_conv2d(input, offset, weight, *args, **kwargs)


#: Implementations of the deformable convolution, by name. Each is called like
#: ``torchvision.ops.deform_conv2d(input, offset, weight, bias, stride=, padding=, dilation=,
#: mask=)`` and follows its offset layout. ``native`` is a compiled CPU gather (plain PyTorch
#: where no C++ compiler is found) with a hand-written backward (``groups=1``); ``auto`` picks
#: per call.
DEFORM_IMPLS: dict[str, DeformFn] = {
    "torchvision": torchvision.ops.deform_conv2d,
    "native": deform_conv2d_native,
    "auto": _auto,
}


def _check_impl(impl: Any) -> str:
    if not isinstance(impl, str) or impl not in DEFORM_IMPLS:
        raise ValueError(f"impl must be one of {sorted(DEFORM_IMPLS)}; got {impl!r}")
    return impl


def _zero_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    *,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    device: Any,
    dtype: Any,
) -> nn.Conv2d:
    """A zero-initialised ``nn.Conv2d`` that draws nothing from any random generator.

    Built on the meta device and then materialised, so a DCN twin consumes the RNG exactly
    like its regular twin: with the same seed both get the same main weights.
    """
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        device="meta",
        dtype=dtype,
    )
    conv = conv.to_empty(device=resolve_device(device))
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
    return conv


def _mergeable(conv: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` (zero padding, bias) that no hook watches."""
    hooked = conv._forward_hooks or conv._forward_pre_hooks
    hooked = hooked or nn.modules.module._global_forward_hooks
    hooked = hooked or nn.modules.module._global_forward_pre_hooks
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and conv.bias is not None
        and not hooked
    )


def _geometry(conv: nn.Conv2d) -> tuple[Any, ...]:
    return conv.stride, conv.padding, conv.dilation, conv.groups


class DeformConv2dBlock(nn.Module):
    """Deformable 2-D convolution with its own offset and modulation predictors.

    ``y(p) = Σ_k w_k · m_k(p) · x(p + p_k + Δp_k(p))`` where ``p_k`` runs over the kernel
    taps, ``Δp_k`` are learned offsets (bilinear sampling, zero outside the input) and
    ``m_k = 2 · sigmoid(logit_k)`` is the DCNv2 modulation (DCNv1: ``m_k = 1``). Offsets and
    modulation logits come from plain convolutions of the block's input with the main
    convolution's kernel size, stride, padding and dilation; both are zero-initialised.

    Args:
        in_channels: Input channels ``C_in``.
        out_channels: Output channels ``C_out``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: As in ``nn.Conv2d``.
        padding: As in ``nn.Conv2d`` (zero padding; an int or a pair, not a string).
        dilation: As in ``nn.Conv2d``.
        groups: As in ``nn.Conv2d``.
        bias: Whether the main convolution has a bias.
        modulated: DCNv2 (``True``, with modulation) or DCNv1 (``False``).
        offset_groups: Number of offset groups ``G``; each group of ``C_in / G`` input
            channels gets its own offsets (and modulation).
        offset_bound: Clamp offsets to ``±offset_bound`` pixels. Clamping is hard: offsets
            at the bound get no gradient.
        offset_bound_frac: Clamp offsets to ``±offset_bound_frac · max(H, W)`` pixels, with
            ``H, W`` the block input's size; ``0.25`` is the bound of the published
            scaled-MNIST DCNv2 model. At most one of the two bounds may be set.
        impl: Name of the implementation in :data:`DEFORM_IMPLS`: ``"auto"`` (default: the
            native one on CPU, torchvision's kernel on other devices), ``"native"`` or
            ``"torchvision"``. All give the same results to float rounding.
        device: Device of the parameters (default: the current default device).
        dtype: Floating dtype of the parameters (default: the default dtype).

    Shape:
        Input ``(B, C_in, H, W)``; output ``(B, C_out, H_out, W_out)`` with
        ``H_out = floor((H + 2·ph - dh·(kh - 1) - 1) / sh) + 1`` (same for ``W``).

    Offset layout:
        As ``torchvision.ops.deform_conv2d`` expects. With ``K = kh · kw`` taps numbered
        row-major, ``k = i · kw + j``, the offsets are ``(B, 2·G·K, H_out, W_out)`` and
        channel ``2·(g·K + k)`` holds ``dy`` (rows, down) and ``2·(g·K + k) + 1`` holds
        ``dx`` (columns, right) of tap ``(i, j)`` in group ``g``, in pixels of the input.
        Output pixel ``(y, x)`` samples the input at row
        ``y·sh - ph + i·dh + dy`` and column ``x·sw - pw + j·dw + dx``. The modulation is
        ``(B, G·K, H_out, W_out)`` with channel ``g·K + k`` for tap ``k`` of group ``g``.

    Attributes:
        weight: ``(C_out, C_in / groups, kh, kw)``; named as in ``nn.Conv2d`` so a regular
            convolution's state dict loads into the block (``strict=False``).
        bias: ``(C_out,)`` or ``None``.
        offset_conv: ``nn.Conv2d`` predicting the offsets.
        mask_conv: ``nn.Conv2d`` predicting the modulation logits, or ``None`` (DCNv1).
        impl: The implementation's name; may be changed after construction.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        modulated: bool = True,
        offset_groups: int = 1,
        offset_bound: float | None = None,
        offset_bound_frac: float | None = None,
        impl: str = "auto",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, name="in_channels", minimum=1)
        self.out_channels = check_int(out_channels, name="out_channels", minimum=1)
        self.kernel_size = check_pair(kernel_size, name="kernel_size", minimum=1)
        self.stride = check_pair(stride, name="stride", minimum=1)
        self.padding = check_pair(padding, name="padding", minimum=0)
        self.dilation = check_pair(dilation, name="dilation", minimum=1)
        self.groups = check_int(groups, name="groups", minimum=1)
        self.offset_groups = check_int(offset_groups, name="offset_groups", minimum=1)
        for name, value in (("groups", self.groups), ("offset_groups", self.offset_groups)):
            if self.in_channels % value:
                raise ValueError(
                    f"in_channels ({self.in_channels}) must be divisible by {name}; got {value}"
                )
        if self.out_channels % self.groups:
            raise ValueError(
                f"out_channels ({self.out_channels}) must be divisible by groups; got {self.groups}"
            )
        if not isinstance(modulated, bool):
            raise TypeError(f"modulated must be a bool; got {modulated!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool; got {bias!r}")
        self.modulated = modulated
        self.offset_bound = check_bound(offset_bound, name="offset_bound")
        self.offset_bound_frac = check_bound(offset_bound_frac, name="offset_bound_frac")
        if self.offset_bound is not None and self.offset_bound_frac is not None:
            raise ValueError(
                "set at most one of offset_bound (pixels) and offset_bound_frac (fraction of "
                f"max(H, W)); got {self.offset_bound} and {self.offset_bound_frac}"
            )
        self.impl = impl

        kw = {"device": device, "dtype": dtype}
        kh, kw_ = self.kernel_size
        self.weight = nn.Parameter(
            torch.empty(self.out_channels, self.in_channels // self.groups, kh, kw_, **kw)
        )
        self.bias = nn.Parameter(torch.empty(self.out_channels, **kw)) if bias else None
        self.reset_parameters()
        taps = self.offset_groups * kh * kw_
        geometry = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        self.offset_conv = _zero_conv(
            self.in_channels, 2 * taps, self.kernel_size, **geometry, **kw
        )
        self.mask_conv = (
            _zero_conv(self.in_channels, taps, self.kernel_size, **geometry, **kw)
            if modulated
            else None
        )

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        self._impl = _check_impl(value)

    def reset_parameters(self) -> None:
        """Initialise ``weight`` and ``bias`` exactly as ``nn.Conv2d`` does (same RNG draws)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def offsets_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The offsets and modulation the block applies to ``x``.

        Args:
            x: ``(B, C_in, H, W)``.

        Returns:
            ``offset`` ``(B, 2·G·K, H_out, W_out)`` in pixels (clamped if a bound is set)
            and ``mask`` ``(B, G·K, H_out, W_out)`` in ``(0, 2)``, or ``None`` for DCNv1.
        """
        offset, logits = self._predict(x)
        bound = self.offset_bound
        if self.offset_bound_frac is not None:
            bound = self.offset_bound_frac * max(x.shape[-2:])
        if bound is not None:
            offset = offset.clamp(-bound, bound)
        mask = 2.0 * torch.sigmoid(logits) if logits is not None else None
        return offset, mask

    def _predict(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Offsets and modulation logits: the two predictors as one convolution with their
        weights concatenated (same values; half the small convolutions to run and
        differentiate), or each module called on its own if either is not a plain
        ``nn.Conv2d``, has hooks (FLOP counting, feature capture) or differs from the other
        in stride, padding, dilation or groups."""
        oc, mc = self.offset_conv, self.mask_conv
        if mc is None:
            return oc(x), None
        if not (_mergeable(oc) and _mergeable(mc) and _geometry(oc) == _geometry(mc)):
            return oc(x), mc(x)
        both = F.conv2d(
            x,
            torch.cat([oc.weight, mc.weight]),
            torch.cat([oc.bias, mc.bias]),
            oc.stride,
            oc.padding,
            oc.dilation,
            oc.groups,
        )
        n = oc.out_channels
        # the logits contiguous: sigmoid rounds a strided slice differently in the last bit
        return both[:, :n], both[:, n:].contiguous()

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"DeformConv2dBlock expects input (B, {self.in_channels}, H, W); got {got}"
            )
        offset, mask = self.offsets_and_mask(x)
        fn = DEFORM_IMPLS[_check_impl(self.impl)]
        return fn(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        parts = [
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}",
            f"stride={self.stride}",
            f"padding={self.padding}",
        ]
        if self.dilation != (1, 1):
            parts.append(f"dilation={self.dilation}")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        parts.append("dcnv2" if self.modulated else "dcnv1")
        if self.offset_groups != 1:
            parts.append(f"offset_groups={self.offset_groups}")
        if self.offset_bound is not None:
            parts.append(f"offset_bound={self.offset_bound}")
        if self.offset_bound_frac is not None:
            parts.append(f"offset_bound_frac={self.offset_bound_frac}")
        if self.impl != "torchvision":
            parts.append(f"impl={self.impl!r}")
        return ", ".join(parts)


def deform_factory(
    *,
    modulated: bool,
    offset_bound: float | None = None,
    offset_bound_frac: float | None = None,
) -> ConvFactory:
    """A :class:`~geomrobust.models._common.ConvFactory` building :class:`DeformConv2dBlock`
    with these options: the one change that turns a regular network into its DCN twin."""
    if not isinstance(modulated, bool):
        raise TypeError(f"modulated must be a bool; got {modulated!r}")
    return functools.partial(
        DeformConv2dBlock,
        modulated=modulated,
        offset_bound=offset_bound,
        offset_bound_frac=offset_bound_frac,
    )


def deform_kernels(model: nn.Module, device: torch.device, dtype: torch.dtype) -> str | None:
    """The kernels that run ``model``'s deformable blocks on ``device`` for ``dtype`` inputs,
    for run records (they round differently): ``"compiled"`` or ``"python"`` (the native
    implementation's two kernels, see :func:`deform_conv2d_native`) or ``"torchvision"``,
    ``+``-joined when blocks differ; ``None`` if the model has no :class:`DeformConv2dBlock`.

    May build the compiled kernel (:func:`._deform_ext.compiled_kernel_available`).
    """
    kinds = set()
    for module in model.modules():
        if isinstance(module, DeformConv2dBlock):
            impl = _auto_impl(device) if module.impl == "auto" else module.impl
            kinds.add("torchvision" if impl == "torchvision" else auto_kernel(device, dtype))
    return "+".join(sorted(kinds)) or None
