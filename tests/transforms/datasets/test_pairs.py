"""Transformation pairs: classes, balance, determinism, magnitudes, crop, materialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geomrobust.transforms import AffineBatch, warp
from geomrobust.transforms.datasets import (
    PairClass,
    PairConfig,
    TransformPairs,
    load_dataset,
    materialise_pairs,
    verify_materialised,
)


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", split="test")


@pytest.mark.parametrize("num_classes", [7, 8])
def test_classes_are_balanced_and_match_the_parameters(digits_test, num_classes):
    pairs = TransformPairs(
        digits_test, 40 * num_classes, config=PairConfig(num_classes=num_classes), generator=3
    )
    idx = np.arange(len(pairs))
    labels = pairs.labels(idx)
    assert torch.equal(torch.bincount(labels), torch.full((num_classes,), 40))
    _, params = pairs.params(idx)
    for k in idx:
        shifted, rotated, scaled = PairClass(int(labels[k])).parts
        p = params[int(k)]
        assert (p.shift_px != (0.0, 0.0)) == shifted
        assert (p.angle_deg != 0.0) == rotated
        assert (p.scale != 1.0) == scaled


def test_magnitudes_stay_away_from_identity(digits_test):
    pairs = TransformPairs(digits_test, 7 * 300, generator=0)
    _, params = pairs.params(np.arange(len(pairs)))
    angles = params.angle_deg[params.angle_deg != 0].abs()
    scales = params.scale[params.scale != 1.0]
    lengths = params.shift_px.norm(dim=1)
    lengths = lengths[lengths > 0]
    assert angles.min() >= 15.0
    assert angles.max() <= 30.0
    assert (((scales >= 0.7) & (scales <= 0.85)) | ((scales >= 1.15) & (scales <= 1.4))).all()
    assert lengths.min() >= 0.1 * 28 - 1e-9
    assert lengths.max() <= 0.2 * 28 + 1e-9


def test_pair_k_is_a_pure_function_of_seed_and_index(digits_test):
    a = TransformPairs(digits_test, 100, generator=11)
    b = TransformPairs(digits_test, 100, generator=11)
    o1, t1, y1, _ = a.batch(np.arange(100))
    o2, t2, y2, _ = b.batch(np.arange(50, 100))
    assert torch.equal(t1[50:], t2)
    assert torch.equal(o1[50:], o2)
    assert torch.equal(y1[50:], y2)
    orig, trans, label = a[57]
    assert torch.equal(orig, o1[57])
    assert torch.equal(trans, t1[57])
    assert label == int(y1[57])
    c = TransformPairs(digits_test, 100, generator=12)
    assert not torch.equal(c.batch(np.arange(100))[1], t1)


def test_transformed_image_is_the_original_warped_by_its_parameters(digits_test):
    pairs = TransformPairs(digits_test, 21, generator=5)
    src, params = pairs.params(np.arange(21))
    originals, transformed, _, _ = pairs.batch(np.arange(21))
    assert torch.equal(originals, digits_test.images[src])
    assert torch.equal(transformed, warp(originals, params))
    assert torch.equal(transformed[0], originals[0])  # class 0: none


def test_crop_keeps_size_and_removes_rotation_corners(digits_test):
    config = PairConfig(crop=True)
    assert config.crop_side(28) == 20  # 27 / (cos 30° + sin 30°) = 19.8, + 1
    assert PairConfig(angle_deg=((40.0, 50.0),)).crop_side(28) == 20  # 27 / √2 = 19.1, + 1
    # A white image rotated by 30°: the corners are black without the crop, not with it.
    white = load_dataset("digits", split="test")
    white = type(white)(
        white.name,
        white.split,
        torch.ones_like(white.images),
        white.labels,
        white.classes,
        white.fingerprint,
    )
    idx = np.arange(2, 7 * 20, 7)  # rotation pairs
    plain = TransformPairs(white, 7 * 20, generator=1).batch(idx)[1]
    cropped = TransformPairs(white, 7 * 20, config=config, generator=1).batch(idx)[1]
    assert cropped.shape == plain.shape
    assert plain.min() == 0.0
    assert cropped.min() > 0.99


def _ones(like, height: int, width: int):
    """``like`` with every image replaced by an all-ones ``height × width`` image."""
    return type(like)(
        like.name,
        like.split,
        torch.ones(len(like), 1, height, width),
        like.labels,
        like.classes,
        like.fingerprint,
    )


def _drawable_angles(config: PairConfig) -> torch.Tensor:
    """Every range's ends, the worst angles (±45°, ±135°) inside it and 41 angles across it."""
    angles = []
    for lo, hi in config.angle_deg:
        angles += [lo, hi, *np.linspace(lo, hi, 41)]
        angles += [a for a in (-135.0, -45.0, 45.0, 135.0) if lo <= a <= hi]
    return torch.tensor(angles, dtype=torch.float64)


@pytest.mark.parametrize(
    "angle_deg",
    [((-30.0, -15.0), (15.0, 30.0)), ((40.0, 50.0),), ((-100.0, -60.0), (120.0, 170.0))],
    ids=["default", "around-45", "past-90"],
)
@pytest.mark.parametrize(
    "size", [(28, 28), (32, 32), (28, 32), (31, 31), (27, 32)], ids=lambda s: f"{s[0]}x{s[1]}"
)
def test_crop_box_is_centred_and_free_of_rotation_padding(angle_deg, size):
    config = PairConfig(angle_deg=angle_deg, crop=True)
    h, w = size
    top, left, crop_h, crop_w = config.crop_box(h, w)
    assert h - top - crop_h == top  # centred: equal margins
    assert w - left - crop_w == left
    assert max(crop_h, crop_w) == config.crop_side(min(h, w))
    # An all-ones image rotated by every angle the config can draw, with zero padding: any
    # padding inside the crop pulls a pixel below 1.
    angles = _drawable_angles(config)
    n = len(angles)
    params = AffineBatch(
        torch.ones(n, dtype=angles.dtype), angles, torch.zeros(n, 2, dtype=angles.dtype)
    )
    for interpolation in ("bilinear", "nearest"):
        rotated = warp(torch.ones(n, 1, h, w), params, interpolation=interpolation)
        assert rotated.min() == 0.0  # the padding is there, outside the crop
        inside = rotated[..., top : top + crop_h, left : left + crop_w]
        assert inside.min() > 1 - 1e-6, interpolation
    # The crop is the largest centred square: two pixels wider shows padding.
    side = config.crop_side(min(h, w))
    if side + 2 <= min(h, w):
        t, s = (h - side - 2) // 2, (w - side - 2) // 2
        rotated = warp(torch.ones(n, 1, h, w), params)
        assert rotated[..., t : t + side + 2, s : s + side + 2].min() < 1 - 1e-3


def test_crop_side_values():
    config = PairConfig()
    # 31 / (cos 30° + sin 30°) = 22.7 -> 23, but 32 - 23 is odd: 22 (margins 5 and 5).
    assert config.crop_side(32) == 22
    assert config.crop_box(32, 32) == (5, 5, 22, 22)
    assert config.crop_box(28, 28) == (4, 4, 20, 20)
    assert config.crop_box(28, 31) == (4, 6, 20, 19)  # 31 - 20 is odd: one narrower
    assert PairConfig(angle_deg=((90.0, 90.0),)).crop_side(32) == 32  # no corners to hide
    assert PairConfig(angle_deg=((45.0, 45.0),)).crop_side(2) == 2  # smallest centred square
    with pytest.raises(ValueError, match="size must be an int >= 1; got 0"):
        config.crop_side(0)


@pytest.mark.parametrize("size", [28, 32])
def test_cropped_rotation_pairs_show_no_padding(digits_test, size):
    # Every rotation pair of all-ones images, cropped and resized back, is all ones.
    ones = _ones(digits_test, size, size)
    idx = np.arange(2, 7 * 600, 7)  # rotation pairs, |angle| in 15°–30°
    pairs = TransformPairs(ones, 7 * 600, config=PairConfig(crop=True), generator=0)
    _, params = pairs.params(idx)
    assert params.angle_deg.abs().max() > 29.9  # the largest angles are drawn
    originals, transformed, _, _ = pairs.batch(idx)
    assert transformed.shape == (len(idx), 1, size, size)
    assert originals.min() > 1 - 1e-6
    assert transformed.min() > 1 - 1e-6


def test_config_errors(digits_test):
    with pytest.raises(ValueError, match="num_classes must be 7 or 8; got 6"):
        PairConfig(num_classes=6)
    with pytest.raises(ValueError, match="angle_deg ranges must exclude 0"):
        PairConfig(angle_deg=((-10.0, 10.0),))
    with pytest.raises(ValueError, match="scale ranges must be > 0 and exclude 1"):
        PairConfig(scale=((0.8, 1.2),))
    with pytest.raises(ValueError, match="shift_fraction must be one range"):
        PairConfig(shift_fraction=(0.0, 0.1))
    with pytest.raises(ValueError, match="num_pairs must be an int >= 0; got -1"):
        TransformPairs(digits_test, -1)
    with pytest.raises(IndexError, match="pair index 10 out of range for 10 pairs"):
        TransformPairs(digits_test, 10, generator=0).params([10])


def test_materialise_pairs_is_byte_identical(tmp_path, digits_test):
    for out in ("a", "b"):
        pairs = TransformPairs(digits_test, 70, generator=2)
        manifest = materialise_pairs(pairs, tmp_path / out, name="pairs-digits", batch_size=16)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert verify_materialised(tmp_path / "a") == manifest
    assert manifest["kind"] == "pairs"
    assert manifest["seed"] == 2
    assert manifest["classes"][:3] == ["none", "displacement", "rotation"]
    labels = np.load(tmp_path / "a" / "labels.npy")
    assert np.bincount(labels).tolist() == [10] * 7
