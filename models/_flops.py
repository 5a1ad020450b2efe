"""Parameter and FLOP counts of a model for a given input.

What :func:`count_flops` counts (FLOPs = 2 × multiply-accumulates, for the whole batch):

* ``nn.Conv2d``: ``2 · B · C_out · H_out · W_out · (C_in / groups) · kh · kw``;
* ``nn.Linear``: ``2 · (rows of the input) · in_features · out_features``;
* :class:`DeformConv2dBlock`: its convolution as a ``Conv2d`` of the same shape, plus
  bilinear sampling as 4 multiply-accumulates (8 FLOPs) per sampled value
  (``B · C_in · kh · kw · H_out · W_out`` values) and, for DCNv2, 1 FLOP per sampled value
  for the modulation. Its offset and modulation predictors are ``nn.Conv2d`` modules and
  are counted as such.

Not counted: biases, activations, pooling, normalisation, element-wise arithmetic (the
residual additions, :class:`PairNet`'s difference and product), the sigmoid and clamp of
the deformable block. These are small next to the convolutions of the models here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._deform import DeformConv2dBlock

__all__ = ["count_flops", "count_params"]


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (shared ones once; buffers not included).

    Args:
        model: Any module.
        trainable_only: Count only parameters with ``requires_grad``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _conv_macs(out: Tensor, in_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    kh, kw = kernel
    return out.numel() * (in_channels // groups) * kh * kw


def count_flops(model: nn.Module, *inputs: Tensor) -> int:
    """FLOPs (2 × multiply-accumulates) of one forward pass of ``model`` on ``inputs``.

    The pass runs in eval mode under ``torch.no_grad()``; each submodule's training flag is
    restored afterwards and BatchNorm statistics are not updated. The model is not moved:
    pass inputs on its device (``meta`` tensors work and cost nothing).

    Args:
        model: The model; called as ``model(*inputs)``.
        *inputs: Example inputs, e.g. one ``(1, C, H, W)`` tensor for the FLOPs per image.

    Returns:
        The FLOPs of the whole batch, counted as the module docstring describes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    if not inputs or not all(isinstance(x, Tensor) for x in inputs):
        raise TypeError("count_flops needs at least one example input tensor after the model")
    total = [0]

    def conv_hook(module: nn.Conv2d, args: tuple, out: Tensor) -> None:
        total[0] += 2 * _conv_macs(out, module.in_channels, module.groups, module.kernel_size)

    def linear_hook(module: nn.Linear, args: tuple, out: Tensor) -> None:
        total[0] += 2 * out.numel() * module.in_features

    def deform_hook(module: DeformConv2dBlock, args: tuple, out: Tensor) -> None:
        kh, kw = module.kernel_size
        samples = out.shape[0] * module.in_channels * kh * kw * out.shape[2] * out.shape[3]
        total[0] += 2 * _conv_macs(out, module.in_channels, module.groups, module.kernel_size)
        total[0] += samples * (9 if module.modulated else 8)

    hooks = []
    training = {m: m.training for m in model.modules()}
    try:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                hooks.append(m.register_forward_hook(conv_hook))
            elif isinstance(m, nn.Linear):
                hooks.append(m.register_forward_hook(linear_hook))
            elif isinstance(m, DeformConv2dBlock):
                hooks.append(m.register_forward_hook(deform_hook))
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return total[0]
