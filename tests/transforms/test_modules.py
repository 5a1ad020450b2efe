"""Module wrappers call the functional op with the same parameters."""

from __future__ import annotations

import pytest
import torch

from geomrobust.transforms import AffineParams, Warp, affine


def test_warp_module_equals_functional():
    x = torch.rand(4, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    p = AffineParams(0.9, 12.0, (1.0, -1.0))
    module = Warp(p, interpolation="nearest", padding="constant", fill=(0.1, 0.2, 0.3))
    expected = affine(
        x,
        scale=0.9,
        angle_deg=12.0,
        shift_px=(1.0, -1.0),
        interpolation="nearest",
        padding="constant",
        fill=(0.1, 0.2, 0.3),
    )
    assert torch.equal(module(x), expected)
    assert "scale=0.9" in repr(module)


def test_warp_module_validates_at_construction():
    with pytest.raises(TypeError, match="params must be AffineParams; got tuple"):
        Warp((1.0, 0.0))
    with pytest.raises(ValueError, match="interpolation must be one of"):
        Warp(AffineParams(), interpolation="cubic")
