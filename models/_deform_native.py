"""Modulated deformable convolution designed for CPU throughput: a compiled kernel, and the
same computation in plain PyTorch operations where it cannot be built.

Same contract and offset layout as ``torchvision.ops.deform_conv2d`` (see
:class:`geomrobust.models.DeformConv2dBlock`).

**Compiled kernel** (``kernel="compiled"``; what ``"auto"`` takes for CPU float32/float64
tensors when :func:`._deform_ext.compiled_kernel_available`): the bilinear gather of the
column matrix ``(B·L, K·C)`` from the channels-last input, and in the backward pass the input,
offset and modulation gradients from the column gradient in one pass over the samples, are
C++ (``csrc/deform_conv2d_cpu.cpp``); the matrix products with the weight stay torch's.

**Plain PyTorch** (``kernel="python"``, any device and dtype), computed as:

1. sampling positions ``p = base + offset`` for every output pixel and tap, the row index
   of their top-left bilinear corner in the zero-padded input and the four corner weights
   (bilinear × modulation);
2. the column matrix: rows layout, one ``embedding_bag`` (each sample a bag of its four
   corner rows with their weights); planes layout, a gather per corner and channel
   (``index_select`` into a reused buffer; the other three corners are the same index into
   the input shifted by one pixel, row or both), summed;
3. one matrix multiply with the weight, written straight into the ``(B, C_out, H_out,
   W_out)`` output.

Two layouts of the gather:

* *rows* (``C / G >= 4``): the channels-last input ``(B·(H+3)·(W+3)·G, C/G)``, whole
  channel rows per sample, columns ``(B·L, K·C)``;
* *planes* (fewer channels per offset group, e.g. an RGB or grey first layer): one
  channel plane at a time, scalar gathers, columns ``(C·K, B·L)``. Gathering 1-3 float rows
  is several times slower per float than gathering scalars from a plane.

The backward pass is written by hand (:class:`torch.autograd.Function`): the input gradient
is one ``index_add_`` per corner, the offset and modulation gradients come from the
products of the column gradient with each corner (rows layout: one sampled matrix product,
``torch.sparse.sampled_addmm``, on the corners' CSR pattern). Supports ``groups=1`` and any
number of offset groups; other configurations use torchvision's kernel.

Work buffers that do not outlive a call are kept per thread and reused (at most
``_MAX_CACHED`` elements each): fresh large allocations page-fault and cost more than the
gathers themselves on CPU.
"""

from __future__ import annotations

import math
import threading
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ._deform_ext import compiled_kernel_available, kernel_error

__all__ = ["deform_conv2d_native"]

#: Fewer channels per offset group than this use the *planes* layout.
_PLANES_BELOW = 4
#: Largest work buffer (elements) kept between calls.
_MAX_CACHED = 1 << 26
_local = threading.local()


def _scratch(slot: str, shape: tuple[int, ...], like: Tensor, *, dtype=None) -> Tensor:
    """An uninitialised work buffer for this thread, reused across calls.

    Only for values that do not outlive the call: the next call overwrites it.
    """
    dtype = like.dtype if dtype is None else dtype
    numel = math.prod(shape)
    # a traced graph (``--graph freeze``) must allocate on each call: a cached buffer would
    # be baked into it as a constant of the traced batch's size
    if torch.jit.is_tracing() or numel > _MAX_CACHED:
        return torch.empty(shape, dtype=dtype, device=like.device)
    cache = _local.__dict__.setdefault("buffers", {})
    # buffers made in inference mode are inference tensors, which a later call outside it
    # could not write: one set per mode
    key = (slot, dtype, like.device, torch.is_inference_mode_enabled())
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        buf = cache[key] = torch.empty(numel, dtype=dtype, device=like.device)
    return buf[:numel].view(shape)


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


# Sample order of each layout, as a permutation of (B, G, K, L), and where the (K, L) base
# positions go in it.
_ORDER = {"rows": (0, 3, 2, 1), "planes": (1, 2, 0, 3)}


def _to_order(t: Tensor, layout: str) -> Tensor:
    """``(B, G, K, L)`` → the layout's sample order (a view)."""
    return t.permute(_ORDER[layout])


def _base_in_order(base: Tensor, layout: str) -> Tensor:
    return base.t()[None, :, :, None] if layout == "rows" else base[:, None, :]


def _sampling(x_shape, offset: Tensor, mask: Tensor | None, geometry, layout: str):
    """Top-left corner indices, corner weights and what the backward pass needs.

    Samples are in the layout's order (``(B, L, K, G)`` for rows, ``(G, K, B, L)`` for
    planes). Positions are clamped to ``[-1, H] × [-1, W]`` and the input is padded with
    one zero row/column before and two after, so every corner indexes a real element and
    positions at or beyond ``-1`` / ``H`` sample 0 (as in torchvision's kernel) without
    per-corner bounds checks. Rows index ``(B·(H+3)·(W+3)·G, C/G)``; planes index one
    channel's ``(B·(H+3)·(W+3),)``.

    Returns:
        ``index`` and ``weights`` for the corners ``(y0, x0), (y0, x0+1), (y0+1, x0),
        (y0+1, x0+1)``: rows ``(*sample shape, 4)`` (the row of every corner), planes the
        top-left corner's index (sample shape) and weights ``(4, *sample shape)``; and
        ``(py, px, ly, lx)``: the clamped positions and their fractional parts.
    """
    b, _, h, w = x_shape
    kh, kw, stride, padding, dilation = geometry
    k = kh * kw
    ho, wo = offset.shape[-2:]
    groups = offset.shape[1] // (2 * k)
    dtype, device = offset.dtype, offset.device
    base_y, base_x = _base_positions(
        ho, wo, kh, kw, stride, padding, dilation, device=device, dtype=dtype
    )
    off = offset.reshape(b, groups, k, 2, ho * wo)  # torchvision's layout: (dy, dx) per tap
    shape = _to_order(off[:, :, :, 0], layout).shape
    py = torch.empty(shape, dtype=dtype, device=device)
    px = torch.empty(shape, dtype=dtype, device=device)
    torch.add(_base_in_order(base_y, layout), _to_order(off[:, :, :, 0], layout), out=py)
    torch.add(_base_in_order(base_x, layout), _to_order(off[:, :, :, 1], layout), out=px)
    py.clamp_(-1, h)
    px.clamp_(-1, w)
    y0 = torch.floor(py, out=_scratch("y0", shape, py))
    x0 = torch.floor(px, out=_scratch("x0", shape, px))
    ly, lx = py - y0, px - x0
    hp, wp = h + 3, w + 3
    if layout == "rows":
        step = groups
        first = torch.arange(b, device=device).view(b, 1, 1, 1) * (hp * wp * groups)
        first = first + torch.arange(groups, device=device).view(1, 1, 1, groups)
    else:
        step = 1
        first = torch.arange(b, device=device).view(1, 1, b, 1) * (hp * wp)
    first = first + (wp + 1) * step
    numel = b * hp * wp * groups
    exact = (dtype == torch.float32 and numel < 2**24) or dtype == torch.float64
    if exact:  # integer-valued floats: the index in one fused op, then one conversion
        flat = x0.mul_(step).add_(y0, alpha=wp * step).add_(first.to(dtype))
        index = flat.long()
    else:
        index = (y0.long() * (wp * step) + x0.long() * step) + first
    hy = torch.sub(1.0, ly, out=_scratch("hy", shape, ly))
    hx = torch.sub(1.0, lx, out=_scratch("hx", shape, lx))
    if mask is not None:
        m = _to_order(mask.reshape(b, groups, k, ho * wo), layout)
        top, bottom = torch.mul(hy, m, out=_scratch("top", shape, ly)), ly * m
    else:
        top, bottom = hy, ly
    # rows: corners last, (N, 4) bags of row indices; planes: corners first
    weights = torch.empty(
        (*shape, 4) if layout == "rows" else (4, *shape), dtype=dtype, device=device
    )
    corner = weights.unbind(-1 if layout == "rows" else 0)
    torch.mul(top, hx, out=corner[0])
    torch.mul(top, lx, out=corner[1])
    torch.mul(bottom, hx, out=corner[2])
    torch.mul(bottom, lx, out=corner[3])
    if layout == "rows":
        index4 = torch.empty((*shape, 4), dtype=index.dtype, device=device)
        for q, shift in enumerate(_shifts(w, step)):
            torch.add(index, shift, out=index4[..., q])
        index = index4
    return index, weights, (py, px, ly, lx)


def _shifts(w: int, step: int) -> tuple[int, int, int, int]:
    """Index shift of each bilinear corner from the top-left one (padded width ``w + 3``)."""
    wp = w + 3
    return (0, step, wp * step, (wp + 1) * step)


def _padded(x: Tensor, layout: str, groups: int) -> Tensor:
    """The input zero-padded (1 before, 2 after) into a work buffer: rows
    ``(B·(H+3)·(W+3)·G, C/G)`` (channels last) or planes ``(C, B·(H+3)·(W+3))``."""
    b, c, h, w = x.shape
    if layout == "rows":
        buf = _scratch("input", (b, h + 3, w + 3, c), x)
        spatial, src = buf.movedim(3, 0), x.permute(1, 0, 2, 3)  # (C, B, H+3, W+3) views
    else:
        buf = _scratch("input", (c, b, h + 3, w + 3), x)
        spatial, src = buf, x.transpose(0, 1)
    for ring in (
        spatial[:, :, :1],
        spatial[:, :, h + 1 :],
        spatial[..., :1],
        spatial[..., w + 1 :],
    ):
        ring.zero_()
    spatial[:, :, 1 : h + 1, 1 : w + 1].copy_(src)
    return buf.view(-1, c // groups) if layout == "rows" else buf.view(c, -1)


def _gather(src: Tensor, index: Tensor, weights: Tensor, shifts, layout: str) -> Tensor:
    """Columns: the four corners of every sample, weighted and summed.

    Rows: ``(B·L·K·G, C/G)`` from rows ``src``. Planes: ``(C, K, B, L)`` from planes ``src``
    (each channel with its offset group's samples).
    """
    if layout == "rows":  # each sample a bag of its 4 corner rows, weighted
        return F.embedding_bag(
            index.view(-1, 4), src, per_sample_weights=weights.view(-1, 4), mode="sum"
        )
    c, per_group = src.shape[0], src.shape[0] // index.shape[0]
    cols = src.new_empty((c, *index.shape[1:]))
    buf = _scratch("gather", tuple(index.shape[1:]), src)
    for ch in range(c):
        g = ch // per_group
        idx = index[g].view(-1)
        for q, shift in enumerate(shifts):
            torch.index_select(src[ch, shift:], 0, idx, out=buf.view(-1))
            if q == 0:
                torch.mul(buf, weights[0, g], out=cols[ch])
            else:
                cols[ch].addcmul_(buf, weights[q, g])
    return cols


def _corner_products(grad_cols: Tensor, src: Tensor, index: Tensor, weights: Tensor) -> Tensor:
    """``(N, 4)``: each sample's column gradient dotted with its four corner rows.

    A sampled matrix product ``grad_cols @ src.T`` at the ``(sample, corner row)`` pattern
    (4 entries per row of a CSR matrix, in corner order since the shifts increase).
    """
    n = index.shape[0]
    cache = _local.__dict__.setdefault("crow", {})
    crow = cache.get((n, index.device))
    if crow is None:
        cache.clear()  # one size at a time: the last layer's
        crow = cache[n, index.device] = torch.arange(0, 4 * n + 1, 4, device=index.device)
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(
            crow, index.view(-1), weights.view(-1), size=(n, src.shape[0])
        )
    return torch.sparse.sampled_addmm(pattern, grad_cols, src.t(), beta=0.0).values()


class _DeformConv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        b, c, _, w = x.shape
        cout, _, kh, kw = weight.shape
        k = kh * kw
        groups = offset.shape[1] // (2 * k)
        ho, wo = offset.shape[-2:]
        n_out = ho * wo
        layout = "rows" if c // groups >= _PLANES_BELOW else "planes"
        index, weights, aux = _sampling(
            x.shape, offset, mask, (kh, kw, stride, padding, dilation), layout
        )
        shifts = _shifts(w, groups if layout == "rows" else 1)
        cols = _gather(_padded(x, layout, groups), index, weights, shifts, layout)
        if layout == "rows":  # columns (tap, channel) per (b, l) row
            w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)
            flat, out_t = cols.view(b * n_out, k * c), _scratch("out", (b * n_out, cout), x)
            out_view = out_t.view(b, n_out, cout).transpose(1, 2)
        else:  # rows (channel, tap), columns (b, l)
            w_mat = weight.reshape(cout, c * k)
            flat, out_t = cols.view(c * k, b * n_out), _scratch("out", (cout, b * n_out), x)
            out_view = out_t.view(cout, b, n_out).transpose(0, 1)
        left, right = (flat, w_mat) if layout == "rows" else (w_mat, flat)
        if bias is not None:
            bias_shape = (1, cout) if layout == "rows" else (cout, 1)
            torch.addmm(bias.view(bias_shape), left, right, out=out_t)
        else:
            torch.mm(left, right, out=out_t)
        out = x.new_empty((b, cout, n_out))  # a copy, never a view of the work buffer
        out.copy_(out_view)
        ctx.save_for_backward(x, offset, mask, weight, bias, index, weights, cols, *aux)
        ctx.layout, ctx.shifts = layout, shifts
        return out.view(b, cout, ho, wo)

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight, bias, index, weights, cols, py, px, ly, lx = ctx.saved_tensors
        layout, shifts = ctx.layout, ctx.shifts
        b, c, h, w = x.shape
        cout, _, kh, kw = weight.shape
        k, n_out = kh * kw, offset.shape[-2] * offset.shape[-1]
        groups = offset.shape[1] // (2 * k)
        need_x, need_offset, need_mask, need_weight, need_bias = ctx.needs_input_grad[:5]
        need_mask = need_mask and mask is not None
        go = grad_out.reshape(b, cout, n_out)
        grad_x = grad_offset = grad_mask = grad_weight = grad_bias = None
        if bias is not None and need_bias:
            grad_bias = go.sum((0, 2))
        # grad_out as a matrix laid out like the forward's matrix product
        if layout == "rows":
            go_t = _scratch("grad_out", (b, n_out, cout), go)
            go_t.copy_(go.transpose(1, 2))
            go_t, flat = go_t.view(b * n_out, cout), cols.view(b * n_out, k * c)
            w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)
            if need_weight:
                grad_weight = (go_t.t() @ flat).view(cout, kh, kw, c).permute(0, 3, 1, 2)
                grad_weight = grad_weight.contiguous()
            grad_cols = _scratch("grad_cols", (b * n_out, k * c), go)
            torch.mm(go_t, w_mat.t(), out=grad_cols)
        else:
            go_t = _scratch("grad_out", (cout, b, n_out), go)
            go_t.copy_(go.transpose(0, 1))
            go_t, flat = go_t.view(cout, b * n_out), cols.view(c * k, b * n_out)
            if need_weight:
                # (C·K, C_out) then transposed: faster than go_t @ flat.t() for these shapes
                grad_weight = (flat @ go_t.t()).t().reshape(weight.shape)
            grad_cols = _scratch("grad_cols", (c * k, b * n_out), go)
            torch.mm(weight.reshape(cout, c * k).t(), go_t, out=grad_cols)
        grad_cols = grad_cols.view(cols.shape)
        if not (need_x or need_offset or need_mask):
            return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None
        need_corners = need_offset or need_mask
        src = _padded(x, layout, groups)
        grad_src = _scratch("grad_input", tuple(src.shape), src).zero_() if need_x else None
        # dL/d(value of each corner), summed over the group's channels, in sample order
        if layout == "rows":
            if need_x:
                idx, w4 = index[..., 0].reshape(-1), weights.view(-1, 4)
                buf = _scratch("gather", tuple(cols.shape), src)
                for q, shift in enumerate(shifts):
                    torch.mul(grad_cols, w4[:, q : q + 1], out=buf)
                    grad_src[shift:].index_add_(0, idx, buf)
            if need_corners:
                corners = _corner_products(grad_cols, src, index.view(-1, 4), weights)
                corners = corners.view(index.shape).unbind(-1)
        else:
            corners = torch.zeros((4, *index.shape), dtype=x.dtype) if need_corners else None
            per_group = c // groups
            buf = _scratch("gather", tuple(index.shape[1:]), src)
            for ch in range(c):
                g = ch // per_group
                idx = index[g].view(-1)
                for q, shift in enumerate(shifts):
                    if need_x:
                        torch.mul(grad_cols[ch], weights[q, g], out=buf)
                        grad_src[ch, shift:].index_add_(0, idx, buf.view(-1))
                    if need_corners:
                        torch.index_select(src[ch, shift:], 0, idx, out=buf.view(-1))
                        corners[q, g].addcmul_(buf, grad_cols[ch])
            corners = corners.unbind(0) if need_corners else None
        if need_x:
            if layout == "rows":
                grad_pad = grad_src.view(b, h + 3, w + 3, c).permute(0, 3, 1, 2)
            else:
                grad_pad = grad_src.view(c, b, h + 3, w + 3).transpose(0, 1)
            grad_x = grad_pad[:, :, 1 : h + 1, 1 : w + 1].contiguous()
        if need_corners:
            g00, g01, g10, g11 = corners
            hy, hx = 1.0 - ly, 1.0 - lx
            if need_mask:
                grad_mask = x.new_empty((b, groups, k, n_out))
                gm = (g00 * hx + g01 * lx).mul_(hy).add_((g10 * hx + g11 * lx).mul_(ly))
                _to_order(grad_mask, layout).copy_(gm)
                grad_mask = grad_mask.view(mask.shape)
            if need_offset:
                # Zero gradient at or beyond the border (the positions were clamped there).
                inside = ((py > -1) & (py < h) & (px > -1) & (px < w)).to(x.dtype)
                if mask is not None:
                    inside *= _to_order(mask.reshape(b, groups, k, n_out), layout)
                grad_offset = x.new_empty((b, groups, k, 2, n_out))
                gy = ((g10 - g00) * hx).add_((g11 - g01) * lx).mul_(inside)
                gx = ((g01 - g00) * hy).add_((g11 - g10) * ly).mul_(inside)
                _to_order(grad_offset[:, :, :, 0], layout).copy_(gy)
                _to_order(grad_offset[:, :, :, 1], layout).copy_(gx)
                grad_offset = grad_offset.view(offset.shape)
        return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None


def _compiled_columns(x_cl: Tensor, offset: Tensor, mask: Tensor | None, cols: Tensor, geometry):
    kh, kw, stride, padding, dilation = geometry
    torch.ops.geomrobust.deform_columns(
        x_cl, offset, mask, cols, kh, kw, *stride, *padding, *dilation
    )


def _compiled_forward(x, offset, mask, weight, bias, stride, padding, dilation, *, cols=None):
    """The compiled kernel's forward: ``(output, channels-last input, columns)``.

    ``cols``: where to write the columns ``(B·L, K·C)`` (a work buffer when nothing needs
    them afterwards); a fresh tensor by default.
    """
    b, c = x.shape[:2]
    cout, _, kh, kw = weight.shape
    k, n_out = kh * kw, offset.shape[-2] * offset.shape[-1]
    x_cl = x.permute(0, 2, 3, 1).contiguous()
    if cols is None:
        cols = x.new_empty((b * n_out, k * c))
    _compiled_columns(x_cl, offset, mask, cols, (kh, kw, stride, padding, dilation))
    w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)
    out_t = _scratch("out", (b * n_out, cout), x)
    if bias is not None:
        torch.addmm(bias.view(1, cout), cols, w_mat, out=out_t)
    else:
        torch.mm(cols, w_mat, out=out_t)
    out = x.new_empty((b, cout, n_out))  # a copy, never a view of the work buffer
    out.copy_(out_t.view(b, n_out, cout).transpose(1, 2))
    return out.view(b, cout, *offset.shape[-2:]), x_cl, cols


class _CompiledDeformConv2dFn(torch.autograd.Function):
    """The compiled kernel (``csrc/deform_conv2d_cpu.cpp``) with the matrix products in torch."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, stride, padding, dilation):
        out, x_cl, cols = _compiled_forward(
            x, offset, mask, weight, bias, stride, padding, dilation
        )
        ctx.save_for_backward(x_cl, offset, mask, weight, bias, cols)
        ctx.geometry = (stride, padding, dilation)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x_cl, offset, mask, weight, bias, cols = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        b, _, _, c = x_cl.shape
        cout, _, kh, kw = weight.shape
        k, n_out = kh * kw, offset.shape[-2] * offset.shape[-1]
        need_x, need_offset, need_mask, need_weight, need_bias = ctx.needs_input_grad[:5]
        need_mask = need_mask and mask is not None
        go = grad_out.reshape(b, cout, n_out)
        grad_x = grad_offset = grad_mask = grad_weight = grad_bias = None
        if bias is not None and need_bias:
            grad_bias = go.sum((0, 2))
        go_t = _scratch("grad_out", (b, n_out, cout), go)
        go_t.copy_(go.transpose(1, 2))
        go_t = go_t.view(b * n_out, cout)
        if need_weight:
            grad_weight = (go_t.t() @ cols).view(cout, kh, kw, c).permute(0, 3, 1, 2)
            grad_weight = grad_weight.contiguous()
        if need_x or need_offset or need_mask:
            w_mat = weight.permute(2, 3, 1, 0).reshape(k * c, cout)
            grad_cols = _scratch("grad_cols", (b * n_out, k * c), go)
            torch.mm(go_t, w_mat.t(), out=grad_cols)
            grad_x_cl = x_cl.new_zeros(x_cl.shape) if need_x else None
            grad_offset = offset.new_empty(offset.shape) if need_offset else None
            grad_mask = mask.new_empty(mask.shape) if need_mask else None
            torch.ops.geomrobust.deform_columns_backward(
                grad_cols, x_cl, offset, mask, grad_x_cl, grad_offset, grad_mask,
                kh, kw, *stride, *padding, *dilation,
            )  # fmt: skip
            if need_x:
                grad_x = grad_x_cl.permute(0, 3, 1, 2).contiguous()
        return grad_x, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None


#: Values of ``deform_conv2d_native(kernel=...)``.
KERNELS = ("auto", "compiled", "python")


#: The dtypes the compiled kernel takes (CPU tensors of one of these dtypes, all alike).
_COMPILED_DTYPES = (torch.float32, torch.float64)


def auto_kernel(device: torch.device, dtype: torch.dtype) -> str:
    """The kernel ``kernel="auto"`` takes for tensors of ``device`` and ``dtype`` (all alike):
    ``"compiled"`` where it applies and could be built, else ``"python"``."""
    compiled = device.type == "cpu" and dtype in _COMPILED_DTYPES
    return "compiled" if compiled and compiled_kernel_available() else "python"


def _compiled_applies(input: Tensor, offset: Tensor, weight: Tensor, bias, mask) -> bool:
    """Whether the compiled kernel takes these tensors: CPU, float32/float64, one dtype."""
    tensors = [t for t in (input, offset, weight, bias, mask) if t is not None]
    return all(t.device.type == "cpu" and t.dtype == input.dtype for t in tensors) and (
        input.dtype in _COMPILED_DTYPES
    )


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
    *,
    kernel: str = "auto",
) -> Tensor:
    """Drop-in for ``torchvision.ops.deform_conv2d`` (same arguments, layout and result).

    Args:
        input: ``(B, C_in, H, W)``.
        offset: ``(B, 2·G·kh·kw, H_out, W_out)``, ``(dy, dx)`` per tap and offset group.
        weight: ``(C_out, C_in, kh, kw)`` (``groups=1``).
        bias: ``(C_out,)`` or ``None``.
        stride, padding, dilation: ints or pairs, as in ``nn.Conv2d``.
        mask: ``(B, G·kh·kw, H_out, W_out)`` modulation, or ``None`` (DCNv1).
        kernel: ``"compiled"`` (the C++ kernel, CPU float32/float64 tensors of one dtype;
            built on first use, see :mod:`._deform_ext`), ``"python"`` (plain PyTorch
            operations, any device and dtype) or ``"auto"``: the compiled one where it applies
            and could be built, else the Python one.

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
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    geometry = (_pair(stride), _pair(padding), _pair(dilation))
    compiled = _compiled_applies(input, offset, weight, bias, mask)
    if kernel == "compiled":
        if not compiled:
            raise ValueError(
                "kernel='compiled' takes CPU float32 or float64 tensors of one dtype; got "
                f"input {input.dtype} on {input.device}; use kernel='python'"
            )
        if not compiled_kernel_available():
            raise RuntimeError(f"the compiled kernel is unavailable: {kernel_error()}")
    elif kernel == "python" or not compiled or auto_kernel(input.device, input.dtype) != "compiled":
        return _DeformConv2dFn.apply(input, offset, mask, weight, bias, *geometry)
    offset = offset.contiguous()
    mask = mask.contiguous() if mask is not None else None
    tensors = (input, offset, mask, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _CompiledDeformConv2dFn.apply(input, offset, mask, weight, bias, *geometry)
    b, c = input.shape[:2]
    n_cols = (b * offset.shape[-2] * offset.shape[-1], weight.shape[2] * weight.shape[3] * c)
    cols = _scratch("cols", n_cols, input)  # not kept: a work buffer
    return _compiled_forward(input, offset, mask, weight, bias, *geometry, cols=cols)[0]
