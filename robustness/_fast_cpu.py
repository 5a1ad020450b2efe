"""The engine's CPU fast path: the same float operations as eager, faster on this kind of CPU.

Two parts, both exact (predictions and logits equal to eager's, ``torch.equal``):

* :class:`ExactMaxPool`, a ``TorchFunctionMode`` that computes ``max_pool2d`` without indices
  (inference only) as the element-wise maximum of the pooling window's strided slices. CPU
  ``max_pool2d`` on NCHW tensors always computes int64 indices too, and took 49 % of the
  scaled-MNIST sweep of ``mnist-cnn`` (4.7 of 9.5 s); the slices take 1.8 ms where it takes
  16 ms on a ``(256, 32, 28, 28)`` batch. A maximum is exact in any order, so the values are
  the same; only the sign of a zero can differ where a window holds both ``-0.0`` and
  ``+0.0``, and ``-0.0 == +0.0``.
* :func:`~geomrobust._malloc.keep_freed_memory`: glibc's ``malloc`` keeps freed memory for
  the next batch instead of page-faulting it back (process-wide).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from geomrobust._malloc import keep_freed_memory

__all__ = ["ExactMaxPool", "keep_freed_memory", "max_pool2d_exact"]


def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise ValueError(f"max_pool2d: {name} must be one or two ints; got {value}")
    return value[0], value[1]


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size (``pooling_output_shape``)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside
        out -= 1
    return out


def max_pool2d_exact(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """``F.max_pool2d`` (without indices) as the maximum over the window's strided slices.

    Same values as ``F.max_pool2d``, NaN included (both propagate it); the padding never wins
    (it is ``-inf``). For inference: ``torch.maximum`` shares the gradient between tied
    elements where ``max_pool2d`` gives it to the first.

    Shape:
        ``(B, C, H, W)`` or ``(C, H, W)`` → ``(..., H_out, W_out)``, as ``F.max_pool2d``.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(kernel_size if stride is None or stride == [] else stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    h, w = x.shape[-2:]
    if min(kh, kw, sh, sw, dh, dw) < 1 or not (0 <= ph <= kh // 2 and 0 <= pw <= kw // 2):
        raise ValueError(
            f"max_pool2d: kernel {kh, kw}, stride {sh, sw}, padding {ph, pw}, dilation "
            f"{dh, dw} are not a valid pooling (padding at most half the kernel)"
        )
    oh = _out_size(h, kh, sh, ph, dh, ceil_mode)
    ow = _out_size(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"max_pool2d: a {h}×{w} input is smaller than the {kh}×{kw} window")
    # -inf padding: before by the padding, after as far as the last window reaches
    right = (ow - 1) * sw + (kw - 1) * dw + 1 - (w + pw)
    bottom = (oh - 1) * sh + (kh - 1) * dh + 1 - (h + ph)
    if ph or pw or right > 0 or bottom > 0:
        x = F.pad(x, (pw, max(right, 0), ph, max(bottom, 0)), value=-math.inf)
    taps = [
        x[..., i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    if len(taps) == 1:
        return taps[0].clone()
    out = torch.maximum(taps[0], taps[1])
    for tap in taps[2:]:
        torch.maximum(out, tap, out=out)
    return out


class ExactMaxPool(TorchFunctionMode):
    """Within this mode, ``max_pool2d`` without indices on CPU tensors that need no
    gradient runs as :func:`max_pool2d_exact`; every other call is unchanged."""

    _funcs = frozenset({F.max_pool2d, torch.max_pool2d})
    _names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._funcs and 2 <= len(args) <= 1 + len(self._names):
            x = args[0]
            options = {**dict(zip(self._names, args[1:], strict=False)), **kwargs}
            if (
                isinstance(x, Tensor)
                and x.device.type == "cpu"
                and x.is_floating_point()
                and x.dim() in (3, 4)
                and not (x.requires_grad and torch.is_grad_enabled())
                and not options.pop("return_indices", False)
                and set(options) <= set(self._names)
            ):
                try:
                    return max_pool2d_exact(x, **options)
                except (ValueError, TypeError):
                    pass  # torch's own call raises its own message
        return func(*args, **kwargs)
