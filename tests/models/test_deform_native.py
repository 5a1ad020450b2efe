"""The native deformable convolution equals torchvision's kernel, gradients included.

Each test runs on both kernels of the native implementation: the compiled one
(``csrc/deform_conv2d_cpu.cpp``) and the plain-PyTorch one. The compiled one needs a C++
compiler; without one its cases skip, unless ``GEOMROBUST_REQUIRE_COMPILED_KERNEL=1`` (set by
CI) makes that a failure.
"""

from __future__ import annotations

import functools
import os
import warnings

import pytest
import torch
from torchvision.ops import deform_conv2d

from geomrobust.models import DEFORM_IMPLS, DeformConv2dBlock
from geomrobust.models import _deform_native as native_module
from geomrobust.models._deform_ext import compiled_kernel_available, kernel_error
from geomrobust.models._deform_native import deform_conv2d_native


def require_compiled_kernel() -> None:
    """Skip (or, under ``GEOMROBUST_REQUIRE_COMPILED_KERNEL=1``, fail) without the kernel."""
    if compiled_kernel_available():
        return
    if os.environ.get("GEOMROBUST_REQUIRE_COMPILED_KERNEL") == "1":
        pytest.fail(f"GEOMROBUST_REQUIRE_COMPILED_KERNEL=1 but: {kernel_error()}")
    pytest.skip(f"the compiled deformable-convolution kernel is unavailable: {kernel_error()}")


@pytest.fixture(params=["compiled", "python"])
def native(request):
    """``deform_conv2d_native`` bound to one kernel."""
    if request.param == "compiled":
        require_compiled_kernel()
    return functools.partial(deform_conv2d_native, kernel=request.param)


def _case(b, c, h, w, cout, k, stride, pad, dil, groups, *, dtype, offset_scale, mask, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    inputs = {
        "input": randn(b, c, h, w),
        "offset": randn(b, 2 * groups * k * k, ho, wo) * offset_scale,
        "weight": randn(cout, c, k, k),
        "bias": randn(cout),
    }
    if mask:
        inputs["mask"] = torch.rand(b, groups * k * k, ho, wo, generator=g, dtype=torch.float64)
        inputs["mask"] = inputs["mask"].to(dtype) * 2
    for t in inputs.values():
        t.requires_grad_()
    geometry = {"stride": stride, "padding": pad, "dilation": dil}
    return inputs, geometry


CASES = [
    # b, c, h, w, cout, k, stride, pad, dil, offset groups
    (2, 4, 7, 7, 5, 3, 1, 1, 1, 1),  # mnist-cnn conv4/conv5 shape, smaller
    (2, 3, 9, 8, 4, 3, 2, 0, 1, 1),  # stride, no padding, non-square
    (1, 4, 8, 8, 3, 3, 1, 2, 2, 2),  # dilation, two offset groups
    (2, 5, 6, 6, 2, 2, 1, 0, 1, 1),  # 2x2 kernel (cifar-small conv2)
    (1, 6, 5, 7, 3, 3, 1, 1, 1, 3),  # three offset groups
    (2, 1, 9, 9, 4, 3, 1, 1, 1, 1),  # one channel: planes layout (grey first layer)
    (2, 8, 6, 6, 3, 3, 1, 1, 1, 2),  # 4 channels per offset group: rows layout, two groups
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("offset_scale", [0.7, 6.0])  # 6 px: many samples fall outside
def test_matches_torchvision_in_outputs_and_all_gradients(case, mask, offset_scale, native):
    inputs, geometry = _case(*case, dtype=torch.float32, offset_scale=offset_scale, mask=mask)
    ours = native(**inputs, **geometry)
    theirs = deform_conv2d(**inputs, **geometry)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(ours)
    names = list(inputs)
    g_ours = torch.autograd.grad(ours, list(inputs.values()), grad)
    g_theirs = torch.autograd.grad(theirs, list(inputs.values()), grad)
    for name, a, b in zip(names, g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"gradient of {name}")


def test_float64_agrees_to_rounding(native):
    inputs, geometry = _case(*CASES[2], dtype=torch.float64, offset_scale=3.0, mask=True)
    torch.testing.assert_close(
        native(**inputs, **geometry),
        deform_conv2d(**inputs, **geometry),
        atol=1e-12,
        rtol=0,
    )


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])  # planes / rows; compiled: 1-3 unrolled
def test_gradcheck_float64(mask, channels, native):
    inputs, geometry = _case(
        1, channels, 4, 4, 2, 3, 1, 1, 1, 1, dtype=torch.float64, offset_scale=0.6, mask=mask
    )
    names = list(inputs)

    def fn(*tensors):
        return native(**dict(zip(names, tensors, strict=True)), **geometry)

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()))


def test_batch_size_zero_and_non_contiguous_input(native):
    inputs, geometry = _case(
        2, 4, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=True
    )
    empty = {
        k: v.detach()[:0] if k in ("input", "offset", "mask") else v.detach()
        for k, v in inputs.items()
    }
    assert native(**empty, **geometry).shape == (0, 3, 6, 6)
    x = inputs["input"].detach()
    strided = x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    assert not strided.is_contiguous()
    args = {k: v.detach() for k, v in inputs.items() if k != "input"}
    torch.testing.assert_close(
        native(strided, **args, **geometry),
        native(x, **args, **geometry),
    )


def test_transposed_offset_and_mask_as_torchvision_accepts(native):
    inputs, geometry = _case(
        2, 4, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float64, offset_scale=1.0, mask=True
    )
    args = {k: v.detach() for k, v in inputs.items()}
    # Offsets and mask laid out (B, C, W, H) in memory and transposed back: same values,
    # strides that .view cannot follow.
    for name in ("offset", "mask"):
        args[name] = args[name].transpose(2, 3).contiguous().transpose(2, 3)
        assert not args[name].is_contiguous()
    expected = deform_conv2d(**args, **geometry)
    torch.testing.assert_close(native(**args, **geometry), expected)


def test_errors():
    x = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match="supports groups=1 only.*use impl='torchvision'"):
        deform_conv2d_native(x, torch.zeros(1, 18, 3, 3), torch.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"offset has 10 channels; expected 2·G·9"):
        deform_conv2d_native(x, torch.zeros(1, 10, 3, 3), torch.zeros(2, 4, 3, 3))


def test_blocks_use_native_on_cpu_and_agree_with_torchvision(monkeypatch):
    import geomrobust.models._deform as deform_module

    torch.manual_seed(0)
    block = DeformConv2dBlock(4, 6, 3, padding=1)
    with torch.no_grad():
        block.offset_conv.weight.normal_(0, 0.5)
        block.mask_conv.weight.normal_(0, 0.5)
    x = torch.randn(3, 4, 7, 7)
    assert block.impl == "auto"
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[0].device.type)
        return deform_conv2d_native(*args, **kwargs)

    monkeypatch.setattr(deform_module, "deform_conv2d_native", spy)
    auto = block(x)
    assert calls == ["cpu"]
    block.impl = "torchvision"
    torch.testing.assert_close(auto, block(x), atol=1e-5, rtol=1e-5)
    assert calls == ["cpu"]
    assert DEFORM_IMPLS["native"] is deform_conv2d_native


@pytest.mark.parametrize("channels", [3, 8], ids=["planes", "rows"])
def test_work_buffers_reused_across_calls_do_not_leak_into_results(channels, native):
    # Two layers' forwards before either backward (as in a model), then both backwards: each
    # must see its own values although the calls share the thread's work buffers.
    first, geometry = _case(
        1, channels, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=True
    )
    second, _ = _case(
        2,
        channels,
        7,
        5,
        4,
        3,
        1,
        1,
        1,
        1,
        dtype=torch.float32,
        offset_scale=2.0,
        mask=True,
        seed=1,
    )
    out_first = native(**first, **geometry)
    expected_first = out_first.detach().clone()
    out_second = native(**second, **geometry)
    torch.testing.assert_close(out_first, expected_first, atol=0, rtol=0)
    grads = []
    for inputs, out in ((second, out_second), (first, out_first)):
        grads.append(torch.autograd.grad(out, list(inputs.values()), torch.ones_like(out)))
    for inputs, got in zip((second, first), grads, strict=True):
        out = deform_conv2d(**inputs, **geometry)
        want = torch.autograd.grad(out, list(inputs.values()), torch.ones_like(out))
        for name, a, b in zip(inputs, got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"gradient of {name}")


def test_output_of_batch_one_is_not_a_view_of_a_work_buffer(native):
    inputs, geometry = _case(
        1, 3, 5, 5, 2, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=False
    )
    args = {k: v.detach() for k, v in inputs.items()}
    out = native(**args, **geometry)
    kept = out.clone()
    other = {k: v * 2 for k, v in args.items()}
    native(**other, **geometry)
    torch.testing.assert_close(out, kept, atol=0, rtol=0)
    assert out.is_contiguous()


def test_training_step_emits_no_warnings(native):
    # The rows layout's backward builds a sparse CSR pattern, whose first use in a process
    # warns that sparse CSR support is in beta; that must not reach users.
    inputs, geometry = _case(
        2, 8, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        native(**inputs, **geometry).sum().backward()
    assert inputs["offset"].grad is not None


@pytest.mark.parametrize("channels", [3, 8], ids=["planes", "rows"])
def test_training_call_after_an_inference_mode_call(channels, native):
    # Work buffers made in inference mode are inference tensors: not reused outside it.
    inputs, geometry = _case(
        2, channels, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=True
    )
    with torch.inference_mode():
        native(**{k: v.detach() for k, v in inputs.items()}, **geometry)
    native(**inputs, **geometry).sum().backward()
    assert inputs["input"].grad is not None


def test_non_finite_inputs_propagate_as_in_torchvision(native):
    # A corner inside the image always takes part, also with weight 0 (integer positions):
    # 0 · inf is NaN, as in torchvision's kernel; corners outside contribute nothing.
    inputs, geometry = _case(
        1, 4, 6, 6, 2, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=0.0, mask=True
    )
    args = {k: v.detach() for k, v in inputs.items()}
    args["input"][0, 0, 2, 3] = float("inf")
    args["input"][0, 2, 5, 0] = float("nan")
    args["offset"][:, :, :3] = 0.5  # some fractional positions too
    expected = deform_conv2d(**args, **geometry)
    assert expected.isnan().any()
    assert not expected.isnan().all()
    torch.testing.assert_close(native(**args, **geometry), expected, equal_nan=True)


def test_kernel_argument_is_checked():
    x = torch.zeros(1, 4, 5, 5)
    offset, weight = torch.zeros(1, 18, 3, 3), torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"kernel must be one of \('auto', 'compiled', 'python'\)"):
        deform_conv2d_native(x, offset, weight, kernel="gpu")
    with pytest.raises(ValueError, match="kernel='compiled' takes CPU float32 or float64.*float16"):
        deform_conv2d_native(x.half(), offset.half(), weight.half(), kernel="compiled")
    with pytest.raises(ValueError, match="kernel='compiled' takes .* of one dtype"):
        deform_conv2d_native(x, offset.double(), weight, kernel="compiled")


def test_auto_takes_the_compiled_kernel_where_it_applies(monkeypatch):
    require_compiled_kernel()
    calls = []
    real = native_module._compiled_columns

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return real(*args, **kwargs)

    monkeypatch.setattr(native_module, "_compiled_columns", spy)
    inputs, geometry = _case(
        2, 4, 6, 6, 3, 3, 1, 1, 1, 1, dtype=torch.float32, offset_scale=1.0, mask=True
    )
    auto = deform_conv2d_native(**inputs, **geometry)
    assert calls == [torch.float32]
    auto.sum().backward()  # the backward runs on the compiled kernel's saved tensors
    assert inputs["offset"].grad is not None
    args = {k: v.detach() for k, v in inputs.items()}
    deform_conv2d_native(**{k: v.double() for k, v in args.items()}, **geometry)
    assert calls == [torch.float32, torch.float64]
    # other dtypes, or no compiled kernel: the Python kernel, bit for bit
    deform_conv2d_native(**{k: v.bfloat16() for k, v in args.items()}, **geometry)
    monkeypatch.setattr(native_module, "compiled_kernel_available", lambda: False)
    torch.testing.assert_close(
        deform_conv2d_native(**args, **geometry),
        deform_conv2d_native(**args, **geometry, kernel="python"),
        atol=0,
        rtol=0,
    )
    assert calls == [torch.float32, torch.float64]


def test_compiled_inference_call_equals_training_call_bitwise():
    # Without gradients the columns go to a reused work buffer and no graph is kept.
    require_compiled_kernel()
    inputs, geometry = _case(
        3, 8, 7, 7, 5, 3, 1, 1, 1, 2, dtype=torch.float32, offset_scale=2.0, mask=True
    )
    trained = deform_conv2d_native(**inputs, **geometry, kernel="compiled")
    assert trained.grad_fn is not None
    with torch.no_grad():
        first = deform_conv2d_native(**inputs, **geometry, kernel="compiled")
        again = deform_conv2d_native(**inputs, **geometry, kernel="compiled")
    assert first.grad_fn is None
    torch.testing.assert_close(first, trained.detach(), atol=0, rtol=0)
    torch.testing.assert_close(again, first, atol=0, rtol=0)
    assert first.data_ptr() != again.data_ptr()


def test_a_traced_block_allocates_per_call_and_runs_any_batch_size():
    # Work buffers are cached per thread; a trace must not bake the cached one in as a
    # constant of the traced batch's size (a larger batch later failed, or worse).
    require_compiled_kernel()
    torch.manual_seed(0)
    block = DeformConv2dBlock(4, 6, 3, padding=1).eval()
    with torch.no_grad():
        block.offset_conv.weight.normal_(0, 0.5)
        block(torch.randn(30, 4, 7, 7))  # caches buffers for 30 images
        with warnings.catch_warnings():  # the tracer's, about shape checks and deprecation
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(block, torch.randn(10, 4, 7, 7)).eval())
        for n in (10, 3, 45):
            x = torch.randn(n, 4, 7, 7)
            torch.testing.assert_close(traced(x), block(x), atol=0, rtol=0)
