"""Modulated deformable convolution in plain PyTorch operations, designed for CPU throughput.

Same contract and offset layout as ``torchvision.ops.deform_conv2d`` (see
:class:`geomrobust.models.DeformConv2dBlock`), computed as:

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
    """Row indices of the four bilinear corners into the padded channels-last input (each
    ``(B·L·K·G,)``), their weights (each ``(B·L·K·G, 1)``), and what the backward needs.

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
    off = offset.reshape(b, groups, k, 2, ho * wo)  # torchvision's layout: (dy, dx) per tap
    py, px = base_y + off[:, :, :, 0], base_x + off[:, :, :, 1]  # (B, G, K, L)
    in_image = ((py > -1) & (py < h) & (px > -1) & (px < w)).to(offset.dtype)
    inside = in_image if mask is None else in_image * mask.reshape(b, groups, k, ho * wo)
    py, px = py.clamp(-1, h), px.clamp(-1, w)
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    wy0, wy1 = hy * inside, ly * inside
    weights = [wy0 * hx, wy0 * lx, wy1 * hx, wy1 * lx]
    hp, wp = h + 3, w + 3
    # Row of the top-left corner in the padded channels-last input, one row per (pixel, group).
    batch = torch.arange(b, device=offset.device).view(b, 1, 1, 1) * hp
    group = torch.arange(groups, device=offset.device).view(1, groups, 1, 1)
    top_left = ((batch + y0.long() + 1) * wp + x0.long() + 1) * groups + group
    # Samples in (B, L, K, G) order, so the gathered rows form the (B·L, K·C) column matrix.
    order = (0, 3, 2, 1)
    top_left = top_left.permute(order).reshape(-1)
    index = [top_left + d * groups for d in (0, 1, wp, wp + 1)]
    weights = [q.permute(order).reshape(-1, 1) for q in (wy0 * hx, wy0 * lx, wy1 * hx, wy1 * lx)]
    return index, weights, (ly, lx, hy, hx, inside, in_image, groups, ho, wo)


def _padded_rows(x: Tensor, groups: int) -> Tensor:
    """``(B·(H+3)·(W+3)·G, C / G)``: the input zero-padded (1 before, 2 after), channels
    last, one row per (pixel, offset group)."""
    c = x.shape[1]
    padded = torch.nn.functional.pad(x, (1, 2, 1, 2))
    return padded.permute(0, 2, 3, 1).reshape(-1, c // groups)


class _DeformConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        b, c = x.shape[:2]
        cout, _, kh, kw = weight.shape
        geometry = (kh, kw, stride, padding, dilation)
        index, weights, aux = _sampling(x.shape, offset, mask, geometry)
        groups, ho, wo = aux[6], aux[7], aux[8]
        rows = _padded_rows(x, groups)
        # Corner by corner into one reused buffer: fresh large allocations are slow.
        cols = rows.index_select(0, index[0]).mul_(weights[0])
        buf = torch.empty_like(cols)
        for i, wq in zip(index[1:], weights[1:], strict=True):
            cols.addcmul_(torch.index_select(rows, 0, i, out=buf), wq)
        k = kh * kw
        cols = cols.view(b * ho * wo, k * c)  # rows (b, l); columns (tap, channel)
        w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)
        out = torch.addmm(bias, cols, w_mat) if bias is not None else cols @ w_mat
        ctx.save_for_backward(x, offset, mask, weight, bias)
        ctx.cache = (index, weights, aux, rows, cols, w_mat)
        return out.view(b, ho, wo, cout).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight, bias = ctx.saved_tensors
        index, weights, aux, rows, cols, w_mat = ctx.cache
        ly, lx, hy, hx, inside, in_image, groups, ho, wo = aux
        b, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        k, n_out = kh * kw, ho * wo
        go = grad_out.permute(0, 2, 3, 1).reshape(b * n_out, cout)
        grad_x = grad_offset = grad_mask = grad_weight = grad_bias = None
        if ctx.needs_input_grad[3]:
            grad_weight = (cols.t() @ go).view(kh, kw, c, cout).permute(3, 2, 0, 1).contiguous()
        if bias is not None and ctx.needs_input_grad[4]:
            grad_bias = go.sum(0)
        if not any(ctx.needs_input_grad[i] for i in (0, 1, 2)):
            return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None
        grad_cols = (go @ w_mat.t()).view(-1, c // groups)  # rows as the gathered values
        if ctx.needs_input_grad[0]:
            grad_rows = x.new_zeros(b * (h + 3) * (w + 3) * groups, c // groups)
            buf = torch.empty_like(grad_cols)
            for i, wq in zip(index, weights, strict=True):
                grad_rows.index_add_(0, i, torch.mul(grad_cols, wq, out=buf))
            grad_pad = grad_rows.view(b, h + 3, w + 3, c)[:, 1 : h + 1, 1 : w + 1]
            grad_x = grad_pad.permute(0, 3, 1, 2).contiguous()
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # dL/d(value of each corner), summed over the group's channels, as (B, G, K, L)
            buf = torch.empty_like(grad_cols)
            g00, g01, g10, g11 = (
                torch.index_select(rows, 0, i, out=buf)
                .mul_(grad_cols)
                .sum(1)
                .view(b, n_out, k, groups)
                .permute(0, 3, 2, 1)
                for i in index
            )
            if ctx.needs_input_grad[2] and mask is not None:
                gm = ((g00 * hx + g01 * lx) * hy + (g10 * hx + g11 * lx) * ly) * in_image
                grad_mask = gm.reshape(mask.shape)
            if ctx.needs_input_grad[1]:
                gy = ((g10 - g00) * hx + (g11 - g01) * lx) * inside
                gx = ((g01 - g00) * hy + (g11 - g10) * ly) * inside
                grad_offset = torch.stack([gy, gx], 3).reshape(offset.shape)
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
