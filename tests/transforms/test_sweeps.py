"""Sweep presets and range parsing."""

from __future__ import annotations

import itertools

import pytest

from geomrobust.transforms import (
    AffineParams,
    Sweep,
    SweepPreset,
    get_sweep,
    make_sweep,
    parse_range,
    parse_shifts,
)


def test_scale_preset_is_exactly_eleven_exact_decimals():
    sweep = get_sweep("scale")
    assert [p.scale for p in sweep] == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert sweep.axes == ("scale",)
    assert sweep.points[sweep.identity_index].is_identity
    assert sweep.identity_index == 5


def test_rotation_preset():
    sweep = get_sweep(SweepPreset.ROTATION)
    angles = [p.angle_deg for p in sweep]
    assert len(angles) == 25
    assert angles[0] == -180.0
    assert angles[-1] == 180.0
    assert all(b - a == 15.0 for a, b in itertools.pairwise(angles))
    assert sweep.axes == ("angle_deg",)


def test_translation_preset_is_an_axis_cross_with_identity_once():
    sweep = get_sweep("translation")
    shifts = [p.shift_px for p in sweep]
    assert len(shifts) == 13
    assert len(set(shifts)) == 13
    assert (0.0, 0.0) in shifts
    assert (-6.0, 0.0) in shifts
    assert (0.0, 6.0) in shifts
    assert all(x == 0.0 or y == 0.0 for x, y in shifts)
    assert sweep.axes == ("shift_px",)


def test_scale_rotation_preset_is_the_product_grid():
    sweep = get_sweep("scale-rotation")
    assert len(sweep) == 11 * 25
    assert sweep.axes == ("scale", "angle_deg")
    assert AffineParams(0.7, -45.0) in sweep.points


def test_unknown_preset_lists_choices_and_suggests():
    with pytest.raises(
        ValueError,
        match=r"unknown sweep 'rotaton'; valid sweeps: \['scale', "
        r"'rotation', 'translation', 'scale-rotation', 'cifar-p-rotate', 'cifar-p-scale', "
        r"'cifar-p-translate', 'diagonal-shift-1px'\]. Did you mean 'rotation'",
    ):
        get_sweep("rotaton")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0.5:1.5:0.25", (0.5, 0.75, 1.0, 1.25, 1.5)),
        ("-30:30:15", (-30.0, -15.0, 0.0, 15.0, 30.0)),
        ("1:0:-0.5", (1.0, 0.5, 0.0)),
        ("0:1:0.3", (0.0, 0.3, 0.6, 0.9)),  # stop off the grid: not included
        ("0.5, 1 ,1.5", (0.5, 1.0, 1.5)),
        ("7", (7.0,)),
        (2.5, (2.5,)),
        ([1, 2], (1.0, 2.0)),
    ],
)
def test_parse_range(spec, expected):
    assert parse_range(spec) == expected


def test_parse_range_decimal_exactness():
    values = parse_range("0.1:0.3:0.1")
    assert values == (0.1, 0.2, 0.3)  # not 0.30000000000000004


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0.5:1.5", r"--scales: expected 'start:stop:step' \(e.g. '0.5:1.5:0.1'\); got '0.5:1.5'"),
        ("0:1:0", r"--scales: step must be non-zero"),
        (
            "0:1:-0.1",
            r"--scales: step -0.1 goes away from stop 1 \(start 0\); use a step of sign \+",
        ),
        ("a,b", r"--scales: 'a' is not a number"),
        ("0:1:nan", r"--scales: values must be finite"),
        ("", r"--scales: empty"),
        ("0:1000000:1", r"--scales: .0:1000000:1. gives more than 100000 values"),
        ("0:1e999999999:1", r"--scales: .0:1e999999999:1. gives more than 100000 values"),
        ("1:2:1e-999999999", r"--scales: .1:2:1e-999999999. gives more than 100000 values"),
    ],
)
def test_parse_range_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_range(spec, name="--scales")


def test_parse_shifts():
    assert parse_shifts("-2:2:2") == ((-2.0, 0.0), (0.0, 0.0), (2.0, 0.0), (0.0, -2.0), (0.0, 2.0))
    assert parse_shifts("1,2;3,-4") == ((1.0, 2.0), (3.0, -4.0))
    assert parse_shifts("1,2;") == ((1.0, 2.0),)
    assert parse_shifts([(1, 1)]) == ((1.0, 1.0),)
    with pytest.raises(ValueError, match=r"--shifts: expected 'x,y;x,y' pairs; got '1,2,3'"):
        parse_shifts("1,2,3;", name="--shifts")


def test_make_sweep_grid_order_and_dedup():
    sweep = make_sweep(scales=(0.5, 1.0), angles=(0.0, 10.0, 0.0))
    assert [(p.scale, p.angle_deg) for p in sweep] == [(0.5, 0), (0.5, 10), (1, 0), (1, 10)]
    assert sweep.axes == ("scale", "angle_deg")
    assert sweep.name == "custom"


def test_sweep_round_trip_and_validation():
    sweep = get_sweep("translation")
    assert Sweep.from_dict(sweep.to_dict()) == sweep
    with pytest.raises(ValueError, match="sweep 'empty' has no points"):
        Sweep("empty", (), ())
    with pytest.raises(ValueError, match=r"unknown sweep axes \['zoom'\]"):
        Sweep("x", (AffineParams(),), ("zoom",))


def test_sequence_presets_of_the_literature():
    rotate = get_sweep("cifar-p-rotate")
    assert [p.angle_deg for p in rotate.points] == [float(15 - i) for i in range(31)]
    scale = get_sweep("cifar-p-scale")
    assert [p.scale for p in scale.points] == [(2 * i + 70) / 100 for i in range(31)]
    translate = get_sweep("cifar-p-translate")
    assert [p.shift_px for p in translate.points] == [(float(i - 7), 0.0) for i in range(16)]
    diagonal = get_sweep("diagonal-shift-1px")
    assert [p.shift_px for p in diagonal.points] == [(0.0, 0.0), (-1.0, -1.0)]
    for sweep in (rotate, scale, translate, diagonal):
        assert sweep.is_sequence
    assert not get_sweep("translation").is_sequence  # a cross of x and y shifts
