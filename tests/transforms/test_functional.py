"""The functional warp: identities, known values, torchvision agreement, errors, gradients."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from geomrobust.transforms import (
    AffineBatch,
    AffineParams,
    affine,
    affine_matrix,
    rotate,
    translate,
    warp,
)
from geomrobust.transforms import scale as scale_images
from geomrobust.transforms._functional import shift_from_fraction


def _images(b=3, c=2, h=12, w=12, *, device="cpu", dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g, dtype=torch.float64).to(device, dtype)


def _smooth(b=2, c=1, size=33, *, device="cpu", dtype=torch.float64):
    """Smooth images (sums of low-frequency waves) for interpolation-error tests."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    waves = [
        torch.sin(0.21 * xs + 0.13 * ys + k) + torch.cos(0.17 * ys - 0.05 * xs * k)
        for k in range(b * c)
    ]
    return torch.stack(waves).reshape(b, c, size, size).to(device, dtype)


# --- smoke, shape, device, dtype -------------------------------------------------------------


def test_output_keeps_shape_device_dtype(device, dtype):
    x = _images(device=device, dtype=dtype)
    y = affine(x, scale=torch.tensor([0.5, 1.2, 0.9]), angle_deg=10.0, shift_px=(1.5, -2.0))
    assert y.shape == x.shape
    assert y.device == x.device
    assert y.dtype == x.dtype


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_warped_in_float32(half):
    x = _images(dtype=torch.float32)
    y = affine(x.to(half), angle_deg=20.0, scale=0.8)
    assert y.dtype == half
    ref = affine(x.to(half).float(), angle_deg=20.0, scale=0.8).to(half)
    assert torch.equal(y, ref)


def test_batch_size_zero():
    x = torch.zeros(0, 3, 8, 8)
    assert affine(x, angle_deg=30.0).shape == (0, 3, 8, 8)
    assert affine(x, angle_deg=torch.zeros(0), scale=torch.ones(0)).shape == (0, 3, 8, 8)


def test_non_contiguous_input_gives_same_result():
    x = _images(b=4, c=3)
    channels_last = x.to(memory_format=torch.channels_last)
    transposed = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not transposed.is_contiguous()
    for params in ({"angle_deg": 17.0}, {"angle_deg": torch.tensor([1.0, 2.0, 3.0, 4.0])}):
        ref = affine(x, **params)
        torch.testing.assert_close(affine(channels_last, **params), ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(affine(transposed, **params), ref, rtol=0, atol=1e-6)


# --- exact identities ------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_identity_is_bit_exact(device, dtype, interpolation, padding):
    x = _images(device=device, dtype=dtype)
    assert torch.equal(affine(x, interpolation=interpolation, padding=padding), x)
    per_image = affine(x, scale=torch.ones(3), angle_deg=torch.tensor([0.0, 360.0, -720.0]))
    assert torch.equal(per_image, x)


def test_identity_images_inside_a_mixed_batch_are_bit_exact():
    x = _images(b=4)
    y = affine(x, angle_deg=torch.tensor([0.0, 30.0, 0.0, 360.0]))
    assert torch.equal(y[0], x[0])
    assert torch.equal(y[2], x[2])
    assert torch.equal(y[3], x[3])
    assert not torch.equal(y[1], x[1])


def test_identity_returns_a_new_tensor():
    x = _images()
    y = affine(x)
    y.add_(1.0)
    assert not torch.equal(x, y)


@pytest.mark.parametrize("k", [1, 2, 3, -1, -2, 4])
@pytest.mark.parametrize("size", [8, 9])
def test_multiples_of_90_are_exact_permutations_with_nearest(device, dtype, k, size):
    x = _images(h=size, w=size, device=device, dtype=dtype)
    y = rotate(x, 90.0 * k, interpolation="nearest")
    # Counter-clockwise as displayed, like numpy/torch rot90 over (rows, columns).
    assert torch.equal(y, torch.rot90(x, k, dims=(-2, -1)))


def test_multiples_of_90_per_image_are_exact_permutations():
    x = _images(b=4, h=10, w=10)
    y = rotate(x, torch.tensor([90.0, 180.0, 270.0, -90.0]), interpolation="nearest")
    for i, k in enumerate([1, 2, 3, -1]):
        assert torch.equal(y[i], torch.rot90(x[i], k, dims=(-2, -1)))


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (0, 2), (-3, 1), (2, -2)])
def test_integer_shifts_are_exact_permutations_with_nearest(device, dtype, dx, dy):
    x = _images(h=9, w=11, device=device, dtype=dtype)
    y = translate(x, (float(dx), float(dy)), interpolation="nearest")
    expected = torch.zeros_like(x)
    h, w = x.shape[-2:]
    dst_rows, src_rows = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    dst_cols, src_cols = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    expected[..., dst_rows, dst_cols] = x[..., src_rows, src_cols]
    assert torch.equal(y, expected)


def test_rotation_then_inverse_restores_the_centre(device):
    x = _smooth(device=device)
    for angle in (17.0, -33.0, 45.0):
        back = rotate(rotate(x, angle), -angle)
        centre = slice(10, 23)
        torch.testing.assert_close(
            back[..., centre, centre], x[..., centre, centre], atol=0.05, rtol=0
        )


def test_params_inverse_restores_the_centre():
    x = _smooth()
    p = AffineParams(scale=1.25, angle_deg=21.0, shift_px=(1.5, -2.0))
    back = warp(warp(x, p), p.inverse())
    centre = slice(11, 22)
    torch.testing.assert_close(back[..., centre, centre], x[..., centre, centre], atol=0.05, rtol=0)


# --- known values ----------------------------------------------------------------------------


def test_known_values_quarter_turn_of_a_2x2():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # Counter-clockwise as displayed: the top-right 2 moves to the top-left.
    assert rotate(x, 90.0, interpolation="nearest").flatten().tolist() == [2.0, 4.0, 1.0, 3.0]
    assert rotate(x, -90.0, interpolation="nearest").flatten().tolist() == [3.0, 1.0, 4.0, 2.0]


def test_known_values_half_pixel_shift_bilinear():
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).view(1, 1, 1, 4)
    y = translate(x, (0.5, 0.0), padding="border")
    assert y.flatten().tolist() == [0.0, 0.5, 0.5, 0.0]


def test_known_values_scale_half_of_a_4x4():
    # Shrinking by 2 about the centre (1.5, 1.5): output pixel 1 samples source 1.5 - 1 = 0.5.
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = scale_images(x, 0.5, padding="border")
    # output (row 1, col 1) samples source (0.5, 0.5): mean of pixels 0, 1, 4, 5 = 2.5
    assert y[0, 0, 1, 1].item() == pytest.approx(2.5)
    # output (row 2, col 2) samples source (2.5, 2.5): mean of 10, 11, 14, 15 = 12.5
    assert y[0, 0, 2, 2].item() == pytest.approx(12.5)


def test_scale_below_one_shrinks_the_content():
    x = torch.zeros(1, 1, 21, 21)
    x[..., 5:16, 5:16] = 1.0
    small = scale_images(x, 0.5, interpolation="nearest")
    big = scale_images(x, 1.5, interpolation="nearest")
    assert small.sum() < x.sum() < big.sum()


def test_shift_moves_content_right_and_down():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = translate(x, (2.0, 1.0), interpolation="nearest")
    assert y[0, 0, 5, 6].item() == 1.0
    assert y.sum().item() == 1.0


def test_composition_order_is_scale_rotation_then_shift():
    # A marked pixel 2 px right of the centre; scale 2, +90°, then shift (1, 0):
    # p - c = (2, 0) -> 2 R(90)(2, 0) = (0, -4) -> + c + (1, 0)
    x = torch.zeros(1, 1, 11, 11)
    x[0, 0, 5, 7] = 1.0
    m = affine_matrix(
        torch.tensor([2.0]), torch.tensor([90.0]), torch.tensor([[1.0, 0.0]]), size=(11, 11)
    )
    dst = m[0] @ torch.tensor([7.0, 5.0, 1.0])
    assert dst.tolist() == [6.0, 1.0, 1.0]


def test_affine_matrix_inverse_is_the_inverse():
    s, a, t = (
        torch.tensor([0.7, 1.3]),
        torch.tensor([12.0, -100.0]),
        torch.tensor([[1.0, 2.0], [-3.0, 0.5]]),
    )
    fwd = affine_matrix(s.double(), a.double(), t.double(), size=(28, 32))
    inv = affine_matrix(s.double(), a.double(), t.double(), size=(28, 32), inverse=True)
    torch.testing.assert_close(fwd @ inv, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))


# --- padding ---------------------------------------------------------------------------------


def test_constant_fill_per_channel_outside_the_image():
    x = _images(b=2, c=3, h=6, w=6)
    y = translate(x, (6.0, 0.0), padding="constant", fill=(0.1, 0.2, 0.3))
    expected = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).expand_as(x)
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_constant_fill_equal_to_a_flat_image_leaves_it_flat(interpolation):
    # The fill is the exact value of the padded image: bilinear blends at the border must
    # give back the same flat value everywhere.
    x = torch.full((3, 1, 10, 10), 0.37, dtype=torch.float64)
    y = affine(
        x,
        scale=torch.tensor([0.5, 0.8, 1.3]),
        angle_deg=33.0,
        shift_px=(1.3, -0.4),
        interpolation=interpolation,
        padding="constant",
        fill=0.37,
    )
    torch.testing.assert_close(y, x, atol=1e-12, rtol=0)


def test_border_and_reflection_padding_known_values():
    x = torch.tensor([[1.0, 2.0, 3.0]]).view(1, 1, 1, 3)
    border = translate(x, (1.0, 0.0), padding="border", interpolation="nearest")
    assert border.flatten().tolist() == [1.0, 1.0, 2.0]
    reflect = translate(x, (-2.0, 0.0), padding="reflection", interpolation="nearest")
    assert reflect.flatten().tolist() == [3.0, 3.0, 2.0]


# --- uniform path equals the per-image path ------------------------------------------------


@pytest.mark.parametrize("padding", ["zeros", "constant", "border"])
def test_one_point_for_the_batch_equals_the_same_point_per_image(padding):
    x = _images(b=300, c=2, h=10, w=10)  # > one internal chunk
    fill = 0.25 if padding == "constant" else None
    kwargs = {"padding": padding, "fill": fill}
    shared = affine(x, scale=0.8, angle_deg=25.0, shift_px=(1.0, 0.5), **kwargs)
    per_image = affine(
        x,
        scale=torch.full((300,), 0.8, dtype=torch.float64),
        angle_deg=torch.full((300,), 25.0, dtype=torch.float64),
        shift_px=torch.tensor([1.0, 0.5], dtype=torch.float64).expand(300, 2),
        **kwargs,
    )
    assert torch.equal(shared, per_image)


def test_chunked_large_batch_equals_small_batches():
    x = _images(b=600, c=1, h=8, w=8)
    angles = torch.linspace(-90, 90, 600)
    whole = affine(x, angle_deg=angles)
    parts = torch.cat([affine(x[i : i + 7], angle_deg=angles[i : i + 7]) for i in range(0, 600, 7)])
    assert torch.equal(whole, parts)


# --- agreement with torchvision -------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "a", "t"),
    [
        (1.0, 30.0, (0.0, 0.0)),
        (0.8, -45.0, (2.5, -1.0)),
        (1.3, 120.0, (-3.0, 2.0)),
        (0.6, 7.5, (1.0, 1.0)),
    ],
)
@pytest.mark.parametrize("size", [(28, 28), (32, 24)])
def test_matches_torchvision_affine_on_the_interior(s, a, t, size):
    x = _images(b=2, c=3, h=size[0], w=size[1], seed=3)
    ours = affine(x, scale=s, angle_deg=a, shift_px=t)
    # torchvision's affine turns positive angles clockwise: the mapping negates the angle.
    theirs = TF.affine(
        x,
        angle=-a,
        translate=list(t),
        scale=s,
        shear=[0.0, 0.0],
        interpolation=TF.InterpolationMode.BILINEAR,
    )
    torch.testing.assert_close(ours[..., 4:-4, 4:-4], theirs[..., 4:-4, 4:-4], atol=1e-4, rtol=0)


def test_matches_torchvision_rotate_sign():
    x = _images(b=1, c=1, h=20, w=20)
    theirs = TF.rotate(x, 30.0, interpolation=TF.InterpolationMode.BILINEAR)
    torch.testing.assert_close(
        rotate(x, 30.0)[..., 4:-4, 4:-4], theirs[..., 4:-4, 4:-4], atol=1e-4, rtol=0
    )


def test_matches_torchvision_nearest_on_the_interior():
    x = _images(b=2, c=1, h=28, w=28, seed=5)
    ours = affine(x, scale=0.9, angle_deg=13.0, shift_px=(1.25, -0.75), interpolation="nearest")
    theirs = TF.affine(
        x,
        angle=-13.0,
        translate=[1.25, -0.75],
        scale=0.9,
        shear=[0.0, 0.0],
        interpolation=TF.InterpolationMode.NEAREST,
    )
    mismatch = (ours != theirs)[..., 4:-4, 4:-4].float().mean().item()
    assert mismatch < 0.005  # only float-rounding ties may differ


# --- gradients -------------------------------------------------------------------------------


def test_gradcheck_images_and_parameters():
    x = _smooth(b=2, c=1, size=7).requires_grad_()
    s = torch.tensor([0.9, 1.2], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([10.0, -25.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, s, a, t: affine(x, scale=s, angle_deg=a, shift_px=t), (x, s, a, t)
    )


def test_gradcheck_uniform_path_and_constant_fill():
    x = _smooth(b=2, c=2, size=6).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: affine(x, scale=0.8, angle_deg=20.0, padding="constant", fill=(0.2, 0.6)), (x,)
    )


# --- errors ----------------------------------------------------------------------------------


def test_errors_on_bad_images():
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\); got \(3, 8, 8\).*unsqueeze"):
        affine(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match=r"floating tensor.*torch.uint8.*float\(\) / 255"):
        affine(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must be a torch.Tensor; got list"):
        affine([[0.0]])


def test_errors_on_bad_parameters():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"scale must be finite and > 0; got 0.0"):
        affine(x, scale=0.0)
    with pytest.raises(ValueError, match=r"scale must be finite and > 0; got -1.0"):
        affine(x, scale=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"angle_deg must be finite \(degrees\); got nan"):
        affine(x, angle_deg=float("nan"))
    with pytest.raises(ValueError, match=r"shift_px must be finite \(pixels\); got inf"):
        affine(x, shift_px=(float("inf"), 0.0))
    with pytest.raises(ValueError, match=r"B=2 entries: got scale \(3,\)"):
        affine(x, scale=torch.ones(3))
    with pytest.raises(ValueError, match=r"shift_px must have shape \(2,\) or \(B, 2\)"):
        affine(x, shift_px=torch.zeros(2, 3))
    with pytest.raises(TypeError, match="scale must be a number or a tensor; got bool"):
        affine(x, scale=True)


def test_errors_on_bad_options():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(
        ValueError,
        match=r"interpolation must be one of \['bilinear', 'nearest'\]"
        r"; got 'bilinaer'. Did you mean 'bilinear'\?",
    ):
        affine(x, interpolation="bilinaer")
    with pytest.raises(ValueError, match=r"padding must be one of .*'reflection'.*got 'wrap'"):
        affine(x, padding="wrap")
    with pytest.raises(ValueError, match="fill is only used with padding='constant'"):
        affine(x, fill=0.5)
    with pytest.raises(ValueError, match="padding='constant' needs a fill value"):
        affine(x, padding="constant")
    with pytest.raises(ValueError, match=r"fill must have 1 or C=3 values .*got 2"):
        affine(x, padding="constant", fill=(0.1, 0.2))


def test_warp_errors():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="params has 3 entries but images has B=2"):
        warp(x, AffineBatch.repeat(AffineParams(), 3))
    with pytest.raises(TypeError, match="params must be AffineParams or AffineBatch; got dict"):
        warp(x, {"scale": 1.0})


def test_shift_from_fraction():
    assert shift_from_fraction((0.1, -0.25), (20, 40)) == (4.0, -5.0)
    frac = torch.tensor([[0.5, 0.5]])
    assert shift_from_fraction(frac, (10, 30)).tolist() == [[15.0, 5.0]]
    with pytest.raises(ValueError, match="fraction_xy must be finite"):
        shift_from_fraction((float("nan"), 0.0), (10, 10))
