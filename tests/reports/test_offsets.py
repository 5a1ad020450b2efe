"""Sampling locations of deformable layers (reports._offsets) and ``geomrobust offsets``."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from geomrobust.cli import main as run_cli
from geomrobust.cli._offsets import _scales
from geomrobust.models import DeformConv2dBlock
from geomrobust.reports._offsets import sampling_points, trace_chain, track_position
from geomrobust.reports._offsets_draw import OffsetPanel, offsets_figure, offsets_frames


def _set_constant(block: DeformConv2dBlock, dy: float, dx: float, mask_logit: float = 0.0):
    """Offsets ``(dy, dx)`` for every tap and position (channel 2k: dy, 2k + 1: dx)."""
    with torch.no_grad():
        block.offset_conv.weight.zero_()
        block.offset_conv.bias.copy_(
            torch.tensor([dy, dx]).repeat(block.offset_conv.out_channels // 2)
        )
        if block.mask_conv is not None:
            block.mask_conv.weight.zero_()
            block.mask_conv.bias.fill_(mask_logit)


# -- one layer ----------------------------------------------------------------------------------


def test_zero_offsets_are_the_regular_grid(device):
    # 9x9 input, k3, stride 2, padding 1, dilation 2 -> 4x4 output; output (1, 2) samples
    # rows 1·2 - 1 + 2i = 1, 3, 5 and columns 2·2 - 1 + 2j = 3, 5, 7, taps row-major.
    block = DeformConv2dBlock(1, 2, 3, stride=2, padding=1, dilation=2, device=device)
    sp = sampling_points(nn.Sequential(block).eval(), torch.rand(1, 9, 9), position=(1, 2))
    expected = [(1, 3), (1, 5), (1, 7), (3, 3), (3, 5), (3, 7), (5, 3), (5, 5), (5, 7)]
    np.testing.assert_array_equal(sp.points_yx, np.array(expected, dtype=np.float64))
    np.testing.assert_array_equal(sp.regular_yx, sp.points_yx)
    np.testing.assert_array_equal(sp.mask, np.ones(9))  # 2·sigmoid(0)
    assert sp.inside.all()
    assert (sp.layer, sp.grid_size, sp.expanded) == ("0", (4, 4), ("0",))
    assert sp.centre_yx == (3.0, 5.0)
    assert sp.stride_px == (2.0, 2.0)


def test_zero_offsets_rectangular_kernel():
    # 6x7 input, kernel (2, 3), stride (1, 2), padding (0, 1) -> 5x4; output (2, 1) samples
    # rows 2 + i = 2, 3 and columns 2 - 1 + j = 1, 2, 3.
    block = DeformConv2dBlock(1, 1, (2, 3), stride=(1, 2), padding=(0, 1), modulated=False)
    sp = sampling_points(nn.Sequential(block).eval(), torch.rand(1, 6, 7), position=(2, 1))
    expected = [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]
    np.testing.assert_array_equal(sp.points_yx, np.array(expected, dtype=np.float64))
    assert sp.mask is None
    assert sp.modulated == ()
    assert sp.grid_size == (5, 4)


def test_constant_offset_shifts_by_dy_dx():
    block = DeformConv2dBlock(1, 2, 3, stride=2, padding=1, dilation=2)
    _set_constant(block, 0.25, -1.5, mask_logit=0.7)
    sp = sampling_points(nn.Sequential(block).eval(), torch.rand(1, 9, 9), position=(1, 2))
    np.testing.assert_array_equal(sp.points_yx - sp.regular_yx, np.tile([0.25, -1.5], (9, 1)))
    np.testing.assert_allclose(sp.mask, np.full(9, 2 / (1 + math.exp(-0.7))), rtol=1e-6)


def test_points_are_where_the_block_samples():
    # A 1x1 deformable conv with weight 1 returns the bilinear sample at its one point: on the
    # ramp 10·row + col that is 10·y + x of the point we compute, which pins the (dy, dx) order.
    block = DeformConv2dBlock(1, 1, 1, bias=False, modulated=False, impl="torchvision")
    _set_constant(block, 0.25, -0.5)
    with torch.no_grad():
        block.weight.fill_(1.0)
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    image = (10 * rows + cols)[None]
    model = nn.Sequential(block).eval()
    with torch.no_grad():
        out = model(image[None])[0, 0]
    for y, x in [(2, 3), (4, 1), (3, 5)]:
        ((py, px),) = sampling_points(model, image, position=(y, x)).points_yx
        assert (py, px) == (y + 0.25, x - 0.5)
        assert float(out[y, x]) == pytest.approx(10 * py + px, abs=1e-5)


def test_points_reading_only_padding_are_flagged():
    block = DeformConv2dBlock(1, 1, 3, padding=1)
    _set_constant(block, -5.0, 0.0)
    sp = sampling_points(nn.Sequential(block).eval(), torch.rand(1, 8, 8), position=(0, 4))
    assert not sp.inside.any()  # rows -1 - 5 + i, all <= -1
    sp = sampling_points(nn.Sequential(block).eval(), torch.rand(1, 8, 8), position=(7, 4))
    assert sp.inside.all()  # rows 1, 2, 3


# -- chains ---------------------------------------------------------------------------------------


def _stacked() -> nn.Sequential:
    b1 = DeformConv2dBlock(1, 2, 3, stride=2, padding=1)  # 12 -> 6
    b2 = DeformConv2dBlock(2, 2, 3, stride=2, padding=0)  # 6 -> 2
    _set_constant(b1, 0.5, 0.25, mask_logit=0.3)
    _set_constant(b2, -1.0, 0.5, mask_logit=-0.4)
    return nn.Sequential(b1, b2).eval()


def test_two_stacked_layers_with_stride():
    # Output (1, 0) of b2 samples b1's grid at (2·1 + i2 - 1, j2 + 0.5); each of those samples
    # the input at (2·(1 + i2) - 1 + i1 + 0.5, 2·(j2 + 0.5) - 1 + j1 + 0.25).
    sp = sampling_points(_stacked(), torch.rand(1, 12, 12), position=(1, 0))
    r = range(3)
    expected = [
        (2 * i2 + i1 + 1.5, 2 * j2 + j1 + 0.25) for i2 in r for j2 in r for i1 in r for j1 in r
    ]
    np.testing.assert_allclose(sp.points_yx, np.array(expected), atol=1e-12)
    assert tuple(sp.points_yx[0]) == (1.5, 0.25)
    assert tuple(sp.points_yx[-1]) == (7.5, 6.25)
    regular = [(2 * i2 + i1 + 3, 2 * j2 + j1 - 1) for i2 in r for j2 in r for i1 in r for j1 in r]
    np.testing.assert_array_equal(sp.regular_yx, np.array(regular, dtype=np.float64))
    sig = lambda v: 2 / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(sp.mask, np.full(81, sig(0.3) * sig(-0.4)), rtol=1e-6)
    assert (sp.layer, sp.expanded, sp.modulated) == ("1", ("1", "0"), ("1", "0"))
    assert sp.centre_yx == (6.0, 2.0)  # b2's window centre (3, 1) on b1's grid -> input
    assert sp.stride_px == (4.0, 4.0)


def test_no_propagate_maps_earlier_layers_through_their_centre():
    sp = sampling_points(_stacked(), torch.rand(1, 12, 12), position=(1, 0), propagate=False)
    expected = [(2 * i2 + 2, 2 * j2 + 1) for i2 in range(3) for j2 in range(3)]
    np.testing.assert_allclose(sp.points_yx, np.array(expected, dtype=np.float64))
    assert sp.expanded == ("1",)
    assert sp.modulated == ("1",)


def test_choose_the_first_layer():
    sp = sampling_points(_stacked(), torch.rand(1, 12, 12), layer="0", position=(2, 3))
    assert sp.grid_size == (6, 6)
    assert tuple(sp.points_yx[0]) == (2 * 2 - 1 + 0.5, 2 * 3 - 1 + 0.25)


def test_pooling_and_regular_conv_map_to_window_centres():
    # conv (identity centre) -> max-pool 2 (row r -> 2r + 0.5) -> deformable 3x3, padding 1.
    model = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2), DeformConv2dBlock(1, 1, 3, padding=1)
    ).eval()
    sp = sampling_points(model, torch.rand(1, 8, 8), position=(1, 2))
    rows, cols = (0.5, 2.5, 4.5), (2.5, 4.5, 6.5)
    np.testing.assert_array_equal(sp.points_yx, np.array([(y, x) for y in rows for x in cols]))
    assert (sp.centre_yx, sp.stride_px) == ((2.5, 4.5), (2.0, 2.0))
    assert track_position(sp, 1.0, (8, 8)) == ((1, 2), False)
    # centre (2.5, 4.5) zooms about (3.5, 3.5): x2 -> (1.5, 5.5) -> grid (0.5, 2.5) -> (1, 3)
    assert track_position(sp, 2.0, (8, 8)) == ((1, 3), False)
    # x4 -> (-0.5, 7.5) -> grid (-0.5, 3.5) -> (0, 4), column clamped to 3
    assert track_position(sp, 4.0, (8, 8)) == ((0, 3), True)


class _Residual(nn.Module):
    """A stride-2 block with a 1x1 stride-2 shortcut, then a deformable layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.down = nn.Conv2d(1, 2, 1, stride=2)
        self.dcn = DeformConv2dBlock(2, 2, 3, padding=1)

    def forward(self, x):
        return self.dcn(self.conv(x).relu() + self.down(x))


def test_shortcut_branch_is_not_on_the_path():
    model = _Residual().eval()
    chain, _ = trace_chain(model, torch.rand(1, 1, 8, 8), "dcn")
    assert [s.name for s in chain] == ["conv", "dcn"]
    sp = sampling_points(model, torch.rand(1, 8, 8), position=(1, 1))
    np.testing.assert_array_equal(np.unique(sp.points_yx[:, 0]), [0.0, 2.0, 4.0])


def test_errors():
    regular = nn.Sequential(nn.Conv2d(1, 1, 3)).eval()
    with pytest.raises(ValueError, match="no deformable layers"):
        sampling_points(regular, torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"one of the deformable layers \['0', '1'\]"):
        sampling_points(_stacked(), torch.rand(1, 12, 12), layer="2")
    with pytest.raises(ValueError, match=r"off layer '1''s output grid 2x2"):
        sampling_points(_stacked(), torch.rand(1, 12, 12), position=(2, 0))
    with pytest.raises(ValueError, match="eval mode"):
        sampling_points(_stacked().train(), torch.rand(1, 12, 12))
    with pytest.raises(ValueError, match="mean and std must be given together"):
        sampling_points(_stacked(), torch.rand(1, 12, 12), mean=(0.5,))


def test_figure_and_frames():
    model = _stacked()
    panels = [
        OffsetPanel(img, sampling_points(model, img, position=(1, 1)), s)
        for s, img in ((0.5, torch.rand(1, 12, 12)), (1.0, torch.rand(1, 12, 12)))
    ]
    fig = offsets_figure(panels, title="test")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 3  # 2 panels + colour bar
    frames = offsets_frames(panels, dpi=40)
    assert len(frames) == 2
    assert frames[0].shape == frames[1].shape
    assert frames[0].dtype == np.uint8


# -- command line ---------------------------------------------------------------------------------

_REF = ["offsets", "--checkpoint", "ref:mnist-cnn-dcnv2", "--no-progress"]


def test_default_scales_are_the_scale_sweep():
    assert _scales(None) == (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5)


def test_cli_writes_png_and_gif(tmp_path, capsys):
    png = tmp_path / "o.png"
    assert run_cli([*_REF, "--index", "3", "--scales", "0.5,1.5", "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert min(im.size) > 300
    gif = tmp_path / "sub" / "o.gif"
    argv = [*_REF, "--index", "3", "--scales", "0.6:1.4:0.4", "--out", str(gif)]
    assert run_cli([*argv, "--position", "max", "--layer", "conv4"]) == 0
    with Image.open(gif) as im:
        assert im.format == "GIF"
        assert im.n_frames == 3
        assert im.info["loop"] == 0
    out = capsys.readouterr().out
    assert f"wrote {png} (2 panels)" in out
    assert f"wrote {gif} (3 frames)" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--checkpoint", "ref:mnist-cnn"], r"no deformable layers.*ref:mnist-cnn-dcnv2"),
        (["--out", "{tmp}/o.jpg"], r"suffix must be \.png .* or \.gif"),
        (["--index", "359"], r"--index must be in 0\.\.358 \(digits test has 359 images\)"),
        (["--out", "{tmp}/exists.png"], r"already exists; pass --force"),
        (["--layer", "conv3"], r"--layer must be one of \['conv4', 'conv5'\]"),
        (["--position", "7,0"], r"off layer 'conv5''s output grid 7x7"),
        (["--scales", "0,1"], r"--scales must be finite and > 0"),
    ],
)
def test_cli_errors(tmp_path, capsys, extra, message):
    (tmp_path / "exists.png").write_bytes(b"x")
    argv = [*_REF, "--out", str(tmp_path / "o.png")]
    argv += [e.format(tmp=tmp_path) for e in extra]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert (tmp_path / "exists.png").read_bytes() == b"x"
    assert not (tmp_path / "o.png").exists()
