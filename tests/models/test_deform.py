"""DeformConv2dBlock: identities, hand-checked offset layout, a naive reference, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geomrobust.models import DEFORM_IMPLS, DeformConv2dBlock


def _reference(x, offset, weight, bias, *, stride, padding, dilation, mask):
    """Slow loop: bilinear samples (zero outside the input) times weights, tap by tap."""
    b_, c_, h, w = x.shape
    out_c, c_per_group, kh, kw = weight.shape
    groups = c_ // c_per_group
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    n_off = offset.shape[1] // (2 * taps)
    padded = F.pad(x, (1, 1, 1, 1))  # one ring of zeros covers every bilinear neighbour

    def sample(b, chans, y, xx):
        if y <= -1 or y >= h or xx <= -1 or xx >= w:
            return torch.zeros(len(chans), dtype=x.dtype)
        y0, x0 = math.floor(y), math.floor(xx)
        ly, lx = y - y0, xx - x0
        val = torch.zeros(len(chans), dtype=x.dtype)
        for dy, dx, wgt in ((0, 0, (1 - ly) * (1 - lx)), (0, 1, (1 - ly) * lx)):
            val = val + wgt * padded[b, chans, y0 + dy + 1, x0 + dx + 1]
        for dy, dx, wgt in ((1, 0, ly * (1 - lx)), (1, 1, ly * lx)):
            val = val + wgt * padded[b, chans, y0 + dy + 1, x0 + dx + 1]
        return val

    cols = torch.zeros(b_, c_, taps, ho, wo, dtype=x.dtype)
    per_off = c_ // n_off
    for b in range(b_):
        for g in range(n_off):
            chans = list(range(g * per_off, (g + 1) * per_off))
            for k in range(taps):
                i, j = divmod(k, kw)
                for oy in range(ho):
                    for ox in range(wo):
                        dy = float(offset[b, 2 * (g * taps + k), oy, ox])
                        dx = float(offset[b, 2 * (g * taps + k) + 1, oy, ox])
                        y = oy * stride[0] - padding[0] + i * dilation[0] + dy
                        xx = ox * stride[1] - padding[1] + j * dilation[1] + dx
                        m = 1.0 if mask is None else float(mask[b, g * taps + k, oy, ox])
                        cols[b, chans, k, oy, ox] = m * sample(b, chans, y, xx)
    out = torch.zeros(b_, out_c, ho, wo, dtype=x.dtype)
    per_out = out_c // groups
    for g in range(groups):
        cin = slice(g * c_per_group, (g + 1) * c_per_group)
        cout = slice(g * per_out, (g + 1) * per_out)
        wg = weight[cout].reshape(per_out, -1)
        out[:, cout] = torch.einsum("ok,bkhw->bohw", wg, cols[:, cin].reshape(b_, -1, ho, wo))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def _randomise_offsets(block: DeformConv2dBlock, gen: torch.Generator, scale: float = 0.5):
    with torch.no_grad():
        for conv in (block.offset_conv, block.mask_conv):
            if conv is None:
                continue
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * scale)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * scale)


CONFIGS = [
    {"kernel_size": 3, "padding": 1},
    {"kernel_size": (3, 2), "stride": 2, "padding": (1, 0)},
    {"kernel_size": 3, "dilation": 2, "padding": 2, "groups": 2},
    {"kernel_size": 2, "bias": False},
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_zero_offsets_unit_mask_equal_conv(cfg, device, dtype):
    torch.manual_seed(0)
    block = DeformConv2dBlock(4, 6, device=device, dtype=dtype, **cfg)
    x = torch.randn(2, 4, 7, 6, device=device, dtype=dtype)
    offset, mask = block.offsets_and_mask(x)
    assert not offset.any()
    assert torch.equal(mask, torch.ones_like(mask))
    conv_kw = {k: v for k, v in cfg.items() if k not in ("kernel_size", "bias")}
    expected = F.conv2d(x, block.weight, block.bias, **conv_kw)
    torch.testing.assert_close(block(x), expected)


def test_same_seed_same_weights_as_conv2d():
    torch.manual_seed(7)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    after_conv = torch.rand(1)
    torch.manual_seed(7)
    block = DeformConv2dBlock(3, 5, 3, padding=1)
    after_block = torch.rand(1)
    assert torch.equal(block.weight, conv.weight)
    assert torch.equal(block.bias, conv.bias)
    assert torch.equal(after_conv, after_block), "the block must draw exactly what Conv2d draws"
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(block(x), conv(x))


def test_conv2d_state_dict_loads_into_block():
    conv = nn.Conv2d(3, 5, 3, padding=1)
    block = DeformConv2dBlock(3, 5, 3, padding=1)
    result = block.load_state_dict(conv.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert sorted(result.missing_keys) == [
        "mask_conv.bias",
        "mask_conv.weight",
        "offset_conv.bias",
        "offset_conv.weight",
    ]
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(block(x), conv(x))


def test_dcnv1_has_no_modulation():
    block = DeformConv2dBlock(2, 3, 3, padding=1, modulated=False)
    assert block.mask_conv is None
    assert block.offset_conv.out_channels == 18
    x = torch.randn(1, 2, 5, 5)
    assert block.offsets_and_mask(x)[1] is None
    torch.testing.assert_close(block(x), F.conv2d(x, block.weight, block.bias, padding=1))


def _centre_tap_block(dy: float, dx: float, **kwargs) -> DeformConv2dBlock:
    """3×3 block whose only non-zero weight is the centre tap (i, j) = (1, 1), k = 4."""
    block = DeformConv2dBlock(1, 1, 3, padding=1, bias=False, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        block.weight.zero_()
        block.weight[0, 0, 1, 1] = 1.0
        block.offset_conv.bias[2 * 4] = dy  # channel 2k: dy (rows, down)
        block.offset_conv.bias[2 * 4 + 1] = dx  # channel 2k + 1: dx (columns, right)
    return block


@pytest.mark.parametrize(("dy", "dx"), [(1, 0), (0, 2), (-1, 0), (0, -1), (1, -2)])
def test_offset_layout_integer_shifts(dy, dx):
    # Output (y, x) samples the input at (y + dy, x + dx); zero outside.
    x = torch.arange(1.0, 26.0, dtype=torch.float64).view(1, 1, 5, 5)
    out = _centre_tap_block(dy, dx)(x)
    expected = torch.zeros_like(x)
    for y in range(5):
        for c in range(5):
            if 0 <= y + dy < 5 and 0 <= c + dx < 5:
                expected[0, 0, y, c] = x[0, 0, y + dy, c + dx]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_offset_layout_other_tap():
    # Tap (0, 0) is k = 0: its offset (dy, dx) = (1, 1) moves it onto the centre pixel.
    block = DeformConv2dBlock(1, 1, 3, padding=1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        block.weight.zero_()
        block.weight[0, 0, 0, 0] = 1.0
        block.offset_conv.bias[0:2] = torch.tensor([1.0, 1.0])
    x = torch.randn(1, 1, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(block(x), x, rtol=0, atol=1e-12)


def test_fractional_offset_is_bilinear():
    x = torch.tensor([[[[0.0, 10.0, 20.0], [30.0, 40.0, 50.0]]]], dtype=torch.float64)
    out = _centre_tap_block(0.5, 0.25)(x)
    # (0, 0) samples (0.5, 0.25): rows 0 and 1 halfway, columns 0 and 1 at a quarter.
    assert out[0, 0, 0, 0].item() == pytest.approx(0.5 * 2.5 + 0.5 * 32.5)
    # (1, 2) samples (1.5, 2.25): row 1 half-weighted, the rest is outside (zero).
    assert out[0, 0, 1, 2].item() == pytest.approx(0.5 * 0.75 * 50.0)


def test_modulation_scales_taps():
    block = DeformConv2dBlock(2, 3, 3, padding=1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        block.mask_conv.bias.fill_(0.3)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    m = 2 * torch.sigmoid(torch.tensor(0.3, dtype=torch.float64))
    torch.testing.assert_close(block(x), m * F.conv2d(x, block.weight, padding=1))


@pytest.mark.parametrize(
    ("bound", "expected"), [({"offset_bound": 1.0}, 1.0), ({"offset_bound_frac": 0.25}, 2.0)]
)
def test_offset_bound_clamps(bound, expected):
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)  # max(H, W) / 4 = 2
    clamped = _centre_tap_block(5.0, -5.0, **bound)
    offset, _ = clamped.offsets_and_mask(x)
    assert offset.abs().max().item() == expected
    torch.testing.assert_close(clamped(x), _centre_tap_block(expected, -expected)(x))


@pytest.mark.parametrize("modulated", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_matches_naive_reference(cfg, modulated):
    gen = torch.Generator().manual_seed(3)
    block = DeformConv2dBlock(4, 4, modulated=modulated, dtype=torch.float64, **cfg)
    _randomise_offsets(block, gen, scale=0.7)
    x = torch.randn(1, 4, 5, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        offset, mask = block.offsets_and_mask(x)
    expected = _reference(
        x,
        offset,
        block.weight,
        block.bias,
        stride=block.stride,
        padding=block.padding,
        dilation=block.dilation,
        mask=mask,
    )
    torch.testing.assert_close(block(x), expected)


def test_offset_groups():
    gen = torch.Generator().manual_seed(4)
    block = DeformConv2dBlock(4, 2, 3, padding=1, offset_groups=2, dtype=torch.float64)
    assert block.offset_conv.out_channels == 36
    assert block.mask_conv.out_channels == 18
    _randomise_offsets(block, gen)
    x = torch.randn(1, 4, 4, 4, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        offset, mask = block.offsets_and_mask(x)
    kw = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}
    expected = _reference(x, offset, block.weight, block.bias, mask=mask, **kw)
    torch.testing.assert_close(block(x), expected)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(5)
    block = DeformConv2dBlock(2, 2, 3, padding=1, dtype=torch.float64)
    _randomise_offsets(block, gen, scale=0.3)  # non-integer offsets: away from the kinks
    names = ["weight", "bias", "offset_conv.weight", "mask_conv.weight"]
    params = dict(block.named_parameters())
    x = torch.randn(1, 2, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    inputs = (x, *(params[n].detach().clone().requires_grad_() for n in names))

    def fn(x, *tensors):
        overrides = dict(zip(names, tensors, strict=True))
        return torch.func.functional_call(block, overrides, (x,))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_batch_size_zero(device, dtype):
    block = DeformConv2dBlock(3, 4, 3, padding=1, device=device, dtype=dtype)
    x = torch.randn(0, 3, 6, 6, device=device, dtype=dtype, requires_grad=True)
    out = block(x)
    assert out.shape == (0, 4, 6, 6)
    out.sum().backward()
    assert block.weight.grad is not None
    assert not block.weight.grad.any()


def test_non_contiguous_input():
    gen = torch.Generator().manual_seed(6)
    block = DeformConv2dBlock(3, 4, 3, padding=1, dtype=torch.float64)
    _randomise_offsets(block, gen)
    x = torch.randn(2, 3, 7, 5, generator=gen, dtype=torch.float64).transpose(2, 3)
    assert not x.is_contiguous()
    torch.testing.assert_close(block(x), block(x.contiguous()))


def test_output_follows_parameters_dtype_and_shape(device, dtype):
    block = DeformConv2dBlock(3, 4, 3, stride=2, device=device, dtype=dtype)
    out = block(torch.randn(2, 3, 9, 8, device=device, dtype=dtype))
    assert out.shape == (2, 4, 4, 3)
    assert out.dtype == dtype
    assert out.device.type == torch.device(device).type


def test_impl_is_pluggable(monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return DEFORM_IMPLS["torchvision"](*args, **kwargs)

    monkeypatch.setitem(DEFORM_IMPLS, "counting", counting)
    block = DeformConv2dBlock(2, 2, 3, padding=1)
    assert block.impl == "auto"
    x = torch.randn(1, 2, 4, 4)
    reference = block(x)
    block.impl = "counting"
    torch.testing.assert_close(block(x), reference)
    assert calls == [1]
    assert "impl='counting'" in repr(block)


def test_errors():
    with pytest.raises(
        ValueError, match=r"impl must be one of \['auto', 'native', 'torchvision'\]; got 'cuda'"
    ):
        DeformConv2dBlock(2, 2, 3, impl="cuda")
    block = DeformConv2dBlock(2, 2, 3)
    with pytest.raises(ValueError, match="impl must be one of"):
        block.impl = "nope"
    with pytest.raises(ValueError, match=r"in_channels \(3\) must be divisible by groups; got 2"):
        DeformConv2dBlock(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels .* divisible by groups"):
        DeformConv2dBlock(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="in_channels .* divisible by offset_groups"):
        DeformConv2dBlock(3, 3, 3, offset_groups=2)
    with pytest.raises(ValueError, match="set at most one of offset_bound"):
        DeformConv2dBlock(2, 2, 3, offset_bound=1.0, offset_bound_frac=0.25)
    with pytest.raises(
        ValueError, match=r"offset_bound must be a finite float > 0 or None; got -1"
    ):
        DeformConv2dBlock(2, 2, 3, offset_bound=-1)
    with pytest.raises(TypeError, match="padding must be an int or a pair"):
        DeformConv2dBlock(2, 2, 3, padding="same")
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1; got 0"):
        DeformConv2dBlock(2, 2, 0)
    with pytest.raises(TypeError, match="modulated must be a bool"):
        DeformConv2dBlock(2, 2, 3, modulated=1)
    with pytest.raises(ValueError, match=r"expects input \(B, 2, H, W\); got \(1, 3, 4, 4\)"):
        block(torch.randn(1, 3, 4, 4))


def test_offset_and_mask_predictors_run_as_one_convolution_with_the_same_values():
    # mnist-cnn conv4/conv5: the merged convolution gives the separate modules' outputs
    # bit for bit, and each module's parameters their gradients (to float32 rounding: the
    # weight and bias gradients sum 64·49 terms in another order).
    torch.manual_seed(0)
    block = DeformConv2dBlock(32, 32, 3, padding=1)
    with torch.no_grad():
        for conv in (block.offset_conv, block.mask_conv):
            conv.weight.normal_(0, 0.1)
            conv.bias.normal_(0, 0.1)
    x = torch.randn(64, 32, 7, 7)
    offset, mask = block.offsets_and_mask(x)
    want_offset = block.offset_conv(x)
    want_mask = 2.0 * torch.sigmoid(block.mask_conv(x))
    assert torch.equal(offset, want_offset)
    assert torch.equal(mask, want_mask)
    grads = torch.randn_like(offset), torch.randn_like(mask)
    params = [p for conv in (block.offset_conv, block.mask_conv) for p in conv.parameters()]
    got = torch.autograd.grad((offset, mask), params, grads)
    want = torch.autograd.grad((want_offset, want_mask), params, grads)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_predictors_replaced_by_other_modules_are_called():
    block = DeformConv2dBlock(4, 6, 3, padding=1)
    block.mask_conv = nn.Sequential(block.mask_conv)
    offset, mask = block.offsets_and_mask(torch.randn(1, 4, 5, 5))
    assert offset.shape == (1, 18, 5, 5)
    assert torch.equal(mask, torch.ones_like(mask))


def test_deform_kernels_names_what_runs_the_blocks(monkeypatch):
    from geomrobust.models import _deform_native, build_model, deform_kernels

    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # only the device type is read
    assert deform_kernels(build_model("mnist-cnn"), cpu, torch.float32) is None
    twin = build_model("mnist-cnn-dcnv2")
    monkeypatch.setattr(_deform_native, "compiled_kernel_available", lambda: True)
    assert deform_kernels(twin, cpu, torch.float32) == "compiled"
    assert deform_kernels(twin, cpu, torch.float64) == "compiled"
    assert deform_kernels(twin, cpu, torch.bfloat16) == "python"  # e.g. under --amp bf16
    assert deform_kernels(twin, cuda, torch.float32) == "torchvision"  # auto off the CPU
    monkeypatch.setattr(_deform_native, "compiled_kernel_available", lambda: False)
    assert deform_kernels(twin, cpu, torch.float32) == "python"
    blocks = [m for m in twin.modules() if isinstance(m, DeformConv2dBlock)]
    blocks[0].impl = "torchvision"
    assert deform_kernels(twin, cpu, torch.float32) == "python+torchvision"
    for block in blocks:
        block.impl = "native"
    assert deform_kernels(twin, cuda, torch.float32) == "python"
