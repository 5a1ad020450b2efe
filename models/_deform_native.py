"""Modulated deformable convolution in plain PyTorch operations, designed for CPU throughput.

Same contract and offset layout as ``torchvision.ops.deform_conv2d`` (see
:class:`models.DeformConv2dBlock`), computed as:

1. sampling positions ``p = base + offset`` for every output pixel and tap, their four
   bilinear corners as row indices into the channels-last input ``(B·H·W, C)`` and the
   corner weights (bilinear × modulation × inside-the-image);
2. one ``index_select`` of whole channel rows per corner (contiguous copies), summed into a
   channels-last column tensor ``(B, L, K·C)``;
3. one matrix multiply with the weight laid out as ``(K·C, C_out)``.

The backward pass is written by hand (:class:`torch.autograd.Function`): the input gradient
is one ``index_add_`` of channel rows, the offset and modulation gradients are reductions
over channels of the same gathered corners. Supports ``groups=1`` and any number of offset
groups; other configurations use torchvision's kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["deform_conv2d_native"]


def _base_positions(
    ho: int, wo: int, kh: int, kw: int, stride, padding, dilation, *, device, dtype
) -> tuple[Tensor, Tensor]:
    """``(K, L)`` rows and columns sampled by each tap and output pixel without offsets."""
    oy = torch.arange(ho, device=device, dtype=dtype) * stride[0] - padding[0]
    ox = torch.arange(wo, device=device, dtype=dtype) * stride[1] - padding[1]
    ky = torch.arange(kh, device=device, dtype=dtype) * dilation[0]
    kx = torch.arange(kw, device=device, dtype=dtype) * dilation[1]
    rows = (ky[:, None, None, None] + oy[None, None, :, None]).expand(kh, kw, ho, wo)
    cols = (kx[None, :, None, None] + ox[None, None, None, :]).expand(kh, kw, ho, wo)
    return rows.reshape(kh * kw, ho * wo), cols.reshape(kh * kw, ho * wo)


def _sampling(x_shape, offset: Tensor, mask: Tensor | None, geometry):
    """Indices of the four bilinear corners into the padded, flattened input planes
    ``(B, G, 1, K·L)`` each, their weights ``(B, G, 1, K·L)``, and what the backward needs.

    The input is padded with one zero row/column before and two after, and sampling
    positions are clamped to ``[-1, H] × [-1, W]``: every corner then indexes a real pixel
    (zeros outside the image), so no per-corner bounds checks are needed. Positions at or
    beyond ``-1`` / ``H`` sample 0 with zero gradient, as in torchvision's kernel.
    """
    b, _, h, w = x_shape
    kh, kw, stride, padding, dilation = geometry
    k = kh * kw
    ho, wo = offset.shape[-2:]
    groups = offset.shape[1] // (2 * k)
    base_y, base_x = _base_positions(
        ho, wo, kh, kw, stride, padding, dilation, device=offset.device, dtype=offset.dtype
    )
    off = offset.view(b, groups, k, 2, ho * wo)  # torchvision's layout: (dy, dx) per tap
    py, px = base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]  # (B, G, K, L)
    in_image = ((py > -1) & (py < h) & (px > -1) & (px < w)).to(offset.dtype)
    inside = in_image if mask is None else in_image * mask.view(b, groups, k, ho * wo)
    py, px = py.clamp(-1, h), px.clamp(-1, w)
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    wy0, wy1 = hy * inside, ly * inside
    weights = [wy0 * hx, wy0 * lx, wy1 * hx, wy1 * lx]
    wp = w + 3
    top_left = (y0.long() + 1) * wp + x0.long() + 1
    index = [top_left + d for d in (0, 1, wp, wp + 1)]
    n = k * ho * wo
    index = [i.view(b, groups, 1, n) for i in index]
    weights = [v.view(b, groups, 1, n) for v in weights]
    return index, weights, (ly, lx, hy, hx, inside, in_image, groups, ho, wo)


def _padded_planes(x: Tensor, groups: int) -> Tensor:
    """``(B, G, C / G, (H + 3)·(W + 3))``: the input zero-padded (1 before, 2 after)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (1, 2, 1, 2))
    return padded.view(b, groups, c // groups, (h + 3) * (w + 3))


class _DeformConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        b, c = x.shape[:2]
        cout, _, kh, kw = weight.shape
        geometry = (kh, kw, stride, padding, dilation)
        index, weights, aux = _sampling(x.shape, offset, mask, geometry)
        groups, ho, wo = aux[6], aux[7], aux[8]
        planes = _padded_planes(x, groups)
        shape = (b, groups, c // groups, index[0].shape[-1])
        values = [planes.gather(3, i.expand(shape)) for i in index]  # (B, G, Cg, K·L) each
        cols = values[0] * weights[0]
        for v, wq in zip(values[1:], weights[1:], strict=True):
            cols.addcmul_(v, wq)
        cols = cols.view(b, c * kh * kw, ho * wo)  # im2col layout: rows (channel, tap)
        out = torch.matmul(weight.view(cout, -1), cols)
        if bias is not None:
            out = out + bias.view(1, cout, 1)
        ctx.save_for_backward(x, offset, mask, weight, bias)
        ctx.cache = (index, weights, aux, values, cols)
        return out.view(b, cout, ho, wo)

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight, bias = ctx.saved_tensors
        index, weights, aux, values, cols = ctx.cache
        ly, lx, hy, hx, inside, in_image, groups, ho, wo = aux
        b, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        k, n_out = kh * kw, ho * wo
        go = grad_out.reshape(b, cout, n_out)
        grad_x = grad_offset = grad_mask = grad_weight = grad_bias = None
        if ctx.needs_input_grad[3]:
            gw = torch.einsum("bol,bcl->oc", go, cols)
            grad_weight = gw.view(weight.shape)
        if bias is not None and ctx.needs_input_grad[4]:
            grad_bias = go.sum((0, 2))
        if not any(ctx.needs_input_grad[i] for i in (0, 1, 2)):
            return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None
        grad_cols = torch.matmul(weight.view(cout, -1).t(), go)  # (B, C·K, L)
        grad_cols = grad_cols.view(b, groups, c // groups, k * n_out)
        if ctx.needs_input_grad[0]:
            grad_planes = x.new_zeros(b, groups, c // groups, (h + 3) * (w + 3))
            for i, wq in zip(index, weights, strict=True):
                grad_planes.scatter_add_(3, i.expand(grad_cols.shape), grad_cols * wq)
            grad_pad = grad_planes.view(b, c, h + 3, w + 3)
            grad_x = grad_pad[:, :, 1 : h + 1, 1 : w + 1].contiguous()
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # dL/d(value of each corner), summed over the group's channels: (B, G, K, L)
            g00, g01, g10, g11 = ((v * grad_cols).sum(2).view(b, groups, k, n_out) for v in values)
            if ctx.needs_input_grad[2] and mask is not None:
                gm = ((g00 * hx + g01 * lx) * hy + (g10 * hx + g11 * lx) * ly) * in_image
                grad_mask = gm.view(mask.shape)
            if ctx.needs_input_grad[1]:
                gy = ((g10 - g00) * hx + (g11 - g01) * lx) * inside
                gx = ((g01 - g00) * hy + (g11 - g10) * ly) * inside
                grad_offset = torch.stack([gy, gx], 3).view(offset.shape)
        return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d_native(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    mask: Tensor | None = None,
) -> Tensor:
    """Drop-in for ``torchvision.ops.deform_conv2d`` (same arguments, layout and result).

    Args:
        input: ``(B, C_in, H, W)``.
        offset: ``(B, 2·G·kh·kw, H_out, W_out)``, ``(dy, dx)`` per tap and offset group.
        weight: ``(C_out, C_in, kh, kw)`` (``groups=1``).
        bias: ``(C_out,)`` or ``None``.
        stride, padding, dilation: ints or pairs, as in ``nn.Conv2d``.
        mask: ``(B, G·kh·kw, H_out, W_out)`` modulation, or ``None`` (DCNv1).

    Returns:
        ``(B, C_out, H_out, W_out)``.
    """
    if weight.shape[1] != input.shape[1]:
        raise ValueError(
            "deform_conv2d_native supports groups=1 only: weight has "
            f"{weight.shape[1]} input channels, input has {input.shape[1]}; use impl='torchvision'"
        )
    k = weight.shape[2] * weight.shape[3]
    if offset.shape[1] % (2 * k) or input.shape[1] % (offset.shape[1] // (2 * k)):
        raise ValueError(
            f"offset has {offset.shape[1]} channels; expected 2·G·{k} with G dividing "
            f"C_in={input.shape[1]}"
        )
    return _DeformConv2dFn.apply(
        input, offset, mask, weight, bias, _pair(stride), _pair(padding), _pair(dilation)
    )
