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
    """``(L, K)`` rows and columns sampled by each output pixel and tap without offsets."""
    oy = torch.arange(ho, device=device, dtype=dtype) * stride[0] - padding[0]
    ox = torch.arange(wo, device=device, dtype=dtype) * stride[1] - padding[1]
    ky = torch.arange(kh, device=device, dtype=dtype) * dilation[0]
    kx = torch.arange(kw, device=device, dtype=dtype) * dilation[1]
    rows = (oy[:, None, None, None] + ky[None, None, :, None]).expand(ho, wo, kh, kw)
    cols = (ox[None, :, None, None] + kx[None, None, None, :]).expand(ho, wo, kh, kw)
    return rows.reshape(ho * wo, kh * kw), cols.reshape(ho * wo, kh * kw)


def _corners(x_shape, offset: Tensor, mask: Tensor | None, geometry):
    """Corner row indices ``(B, L, K, G, 4)`` and weights, plus what the backward needs."""
    b, _, h, w = x_shape
    kh, kw, stride, padding, dilation = geometry
    k = kh * kw
    ho, wo = offset.shape[-2:]
    groups = offset.shape[1] // (2 * k)
    base_y, base_x = _base_positions(
        ho, wo, kh, kw, stride, padding, dilation, device=offset.device, dtype=offset.dtype
    )
    # offset (B, G·K·2, Ho, Wo) -> (B, L, K, G) for dy and dx
    off = offset.reshape(b, groups, k, 2, ho * wo).permute(0, 4, 2, 1, 3)
    py = base_y[None, :, :, None] + off[..., 0]
    px = base_x[None, :, :, None] + off[..., 1]
    y0, x0 = torch.floor(py), torch.floor(px)
    ly, lx = py - y0, px - x0
    y0i, x0i = y0.long(), x0.long()
    ys = torch.stack([y0i, y0i, y0i + 1, y0i + 1], -1)
    xs = torch.stack([x0i, x0i + 1, x0i, x0i + 1], -1)
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    hy, hx = 1.0 - ly, 1.0 - lx
    bil = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)
    valid = inside.to(offset.dtype)
    m = mask.reshape(b, groups, k, ho * wo).permute(0, 3, 2, 1) if mask is not None else None
    weights = bil * valid * (m[..., None] if m is not None else 1.0)
    pos = ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)
    batch = torch.arange(b, device=offset.device).view(b, 1, 1, 1, 1) * (h * w)
    group = torch.arange(groups, device=offset.device).view(1, 1, 1, groups, 1)
    rows = (batch + pos) * groups + group
    return rows, weights, (ly, lx, valid, m, groups, ho, wo)


def _gather(x_rows: Tensor, rows: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Columns ``(B, L, K, G, Cg)`` and the gathered corners ``(B, L, K, G, 4, Cg)``."""
    corners = x_rows.index_select(0, rows.reshape(-1)).view(*rows.shape, x_rows.shape[1])
    cols = torch.einsum("blkgqc,blkgq->blkgc", corners, weights)
    return cols, corners


class _DeformConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        b, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        geometry = (kh, kw, stride, padding, dilation)
        rows, weights, aux = _corners(x.shape, offset, mask, geometry)
        groups, ho, wo = aux[4], aux[5], aux[6]
        # channels-last rows, one per (pixel, offset group): (B·H·W·G, C / G)
        x_rows = x.permute(0, 2, 3, 1).reshape(b * h * w * groups, c // groups)
        cols, corners = _gather(x_rows, rows, weights)
        n_out, k = ho * wo, kh * kw
        cols = cols.reshape(b, n_out, k * c)
        w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)  # (K·C, Cout), tap-major
        out = cols @ w_mat
        if bias is not None:
            out = out + bias
        ctx.save_for_backward(x, offset, mask, weight, bias)
        ctx.geometry = geometry
        ctx.cache = (rows, weights, aux, corners, cols, w_mat)
        return out.view(b, ho, wo, cout).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight, bias = ctx.saved_tensors
        rows, weights, aux, corners, cols, w_mat = ctx.cache
        ly, lx, valid, m, groups, ho, wo = aux
        b, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        k, n_out = kh * kw, ho * wo
        go = grad_out.permute(0, 2, 3, 1).reshape(b, n_out, cout)
        grad_x = grad_offset = grad_mask = grad_weight = grad_bias = None
        if ctx.needs_input_grad[3]:
            gw = cols.reshape(b * n_out, k * c).t() @ go.reshape(b * n_out, cout)  # (K·C, Cout)
            grad_weight = gw.view(kh, kw, c, cout).permute(3, 2, 0, 1).contiguous()
        if bias is not None and ctx.needs_input_grad[4]:
            grad_bias = go.sum((0, 1))
        need_cols = any(ctx.needs_input_grad[i] for i in (0, 1, 2))
        if need_cols:
            grad_cols = (go @ w_mat.t()).view(b, n_out, k, groups, c // groups)
        if ctx.needs_input_grad[0]:
            src = grad_cols.unsqueeze(4) * weights.unsqueeze(5)  # (B, L, K, G, 4, Cg)
            grad_rows = x.new_zeros(b * h * w * groups, c // groups)
            grad_rows.index_add_(0, rows.reshape(-1), src.reshape(-1, c // groups))
            grad_x = grad_rows.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # dL/d(corner weight) for each of the four corners: (B, L, K, G, 4)
            g_corner = torch.einsum("blkgqc,blkgc->blkgq", corners, grad_cols)
            hy, hx = 1.0 - ly, 1.0 - lx
            if ctx.needs_input_grad[2] and mask is not None:
                bil = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)
                gm = (g_corner * bil * valid).sum(-1)  # (B, L, K, G)
                grad_mask = gm.permute(0, 3, 2, 1).reshape(mask.shape)
            if ctx.needs_input_grad[1]:
                scale = g_corner * valid * (m[..., None] if m is not None else 1.0)
                d_ly = torch.stack([-hx, -lx, hx, lx], -1)
                d_lx = torch.stack([-hy, hy, -ly, ly], -1)
                gy = (scale * d_ly).sum(-1)
                gx = (scale * d_lx).sum(-1)
                g = torch.stack([gy, gx], -1)  # (B, L, K, G, 2)
                grad_offset = g.permute(0, 3, 2, 4, 1).reshape(offset.shape)
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
