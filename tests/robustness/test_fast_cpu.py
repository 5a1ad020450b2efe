"""The exact CPU fast path: ``max_pool2d`` from strided slices, and malloc's thresholds."""

from __future__ import annotations

import itertools
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from geomrobust import _malloc
from geomrobust.robustness import _fast_cpu
from geomrobust.robustness._fast_cpu import ExactMaxPool, keep_freed_memory, max_pool2d_exact


def _with_specials(shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """Random values with a NaN, a -inf, an +inf, ties and signed zeros."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen).round(decimals=1).to(dtype)  # ties
    flat = x.view(-1)
    flat[0], flat[5], flat[9], flat[13], flat[14] = float("nan"), -torch.inf, torch.inf, -0.0, 0.0
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN where NaN, same shape and dtype."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(0.5), b.nan_to_num(0.5))
    )


CASES = [
    (k, s, p, d, c)
    for k, s, p, d, c in itertools.product((1, 2, 3), (None, 1, 2, 3), (0, 1), (1, 2), (0, 1))
    if p <= k // 2
]


@pytest.mark.parametrize("size", [(7, 9), (8, 8), (28, 28), (5, 3)])
def test_equals_max_pool2d_for_every_window(size):
    x = _with_specials((2, 3, *size))
    checked = 0
    for k, s, p, d, c in CASES:
        try:
            want = F.max_pool2d(x, k, s, p, d, bool(c))
        except RuntimeError:  # the window does not fit: ours refuses too
            with pytest.raises(ValueError, match="smaller than the"):
                max_pool2d_exact(x, k, s, p, d, bool(c))
            continue
        assert _same(max_pool2d_exact(x, k, s, p, d, bool(c)), want), (k, s, p, d, c)
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("float_type", [torch.float64, torch.bfloat16, torch.float16])
def test_other_dtypes_unbatched_noncontiguous_and_empty(float_type):
    x = _with_specials((3, 4, 12, 10), float_type)
    assert _same(max_pool2d_exact(x, 2), F.max_pool2d(x, 2))
    assert _same(max_pool2d_exact(x[0], 3, 2, 1), F.max_pool2d(x[0], 3, 2, 1))  # (C, H, W)
    odd = x.transpose(2, 3)[:, ::2]  # non-contiguous
    assert _same(max_pool2d_exact(odd, (2, 3), (1, 2)), F.max_pool2d(odd, (2, 3), (1, 2)))
    empty = x[:0]
    assert max_pool2d_exact(empty, 2).shape == (0, 4, 6, 5)


def test_bad_windows_are_refused():
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="padding at most half the kernel"):
        max_pool2d_exact(x, 2, padding=2)
    with pytest.raises(ValueError, match="not a valid pooling"):
        max_pool2d_exact(x, 2, stride=0)


def test_the_mode_swaps_inference_pooling_only(monkeypatch):
    calls = []
    real = _fast_cpu.max_pool2d_exact
    monkeypatch.setattr(
        _fast_cpu, "max_pool2d_exact", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(3, 1, 1))
    x = torch.rand(5, 1, 14, 14)
    with torch.inference_mode():
        want = model(x)
        with ExactMaxPool():
            got = model(x)
            torch.max_pool2d(x, 2)
            F.max_pool2d(x, 2, return_indices=True)  # indices: torch's own kernel
    assert torch.equal(got, want)
    assert len(calls) == 3  # two modules, torch.max_pool2d; not the call with indices
    calls.clear()
    xg = x.clone().requires_grad_()
    with ExactMaxPool():
        out = model(xg)
    out.sum().backward()  # gradients go to the first of tied elements, as torch's own does
    assert calls == []
    assert xg.grad is not None


def test_the_mode_leaves_torchs_own_errors():
    with ExactMaxPool(), pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(torch.rand(1, 1, 4, 4), 2, padding=2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_sets_glibcs_thresholds_once(monkeypatch):
    import ctypes.util

    if "libc.so" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("the C library is not glibc")
    assert keep_freed_memory() is True
    monkeypatch.setattr(_malloc.ctypes, "CDLL", lambda *a: pytest.fail("called twice"))
    assert keep_freed_memory() is True  # once per process: the result is kept


def test_keep_freed_memory_is_a_no_op_without_mallopt(monkeypatch):
    monkeypatch.setattr(_malloc, "_kept", None)
    monkeypatch.setattr(_malloc.sys, "platform", "darwin")
    assert keep_freed_memory() is False
