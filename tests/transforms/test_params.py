"""AffineParams / AffineBatch: validation, inverse, composition, serialisation."""

from __future__ import annotations

import math

import pytest
import torch

from geomrobust.transforms import AffineBatch, AffineParams


def test_defaults_are_identity():
    p = AffineParams()
    assert p.is_identity
    assert p.label() == "identity"
    assert AffineParams(angle_deg=360.0).is_identity
    assert not AffineParams(angle_deg=90.0).is_identity


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.0}, r"scale must be finite and > 0; got 0.0"),
        ({"scale": -2}, r"scale must be finite and > 0; got -2.0"),
        ({"scale": math.inf}, r"scale must be finite and > 0; got inf"),
        ({"angle_deg": math.nan}, r"angle_deg must be finite \(degrees\); got nan"),
        ({"shift_px": (0.0, math.inf)}, r"shift_px\[1\] \(y\) must be finite \(pixels\); got inf"),
        ({"shift_px": (1.0,)}, r"shift_px must be a pair \(x, y\)"),
        ({"shift_px": "12"}, r"shift_px must be a pair \(x, y\)"),
    ],
)
def test_validation_names_parameter_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AffineParams(**kwargs)


def test_type_errors():
    with pytest.raises(TypeError, match="scale must be a real number; got str"):
        AffineParams(scale="1")
    with pytest.raises(TypeError, match="angle_deg must be a real number; got bool"):
        AffineParams(angle_deg=True)


def test_values_are_normalised_floats_and_frozen():
    p = AffineParams(1, -0.0, [2, 3])
    assert p == AffineParams(1.0, 0.0, (2.0, 3.0))
    assert isinstance(p.scale, float)
    assert p.shift_px == (2.0, 3.0)
    with pytest.raises(AttributeError):
        p.scale = 2.0  # type: ignore[misc]


def test_inverse_and_then_give_identity():
    p = AffineParams(1.25, 33.0, (3.0, -1.5))
    for q in (p.then(p.inverse()), p.inverse().then(p)):
        assert q.scale == pytest.approx(1.0)
        assert q.angle_deg == pytest.approx(0.0)
        assert q.shift_px == pytest.approx((0.0, 0.0), abs=1e-12)


def test_then_matches_matrix_product():
    from geomrobust.transforms import affine_matrix

    p, q = AffineParams(0.8, 20.0, (1.0, 2.0)), AffineParams(1.5, -70.0, (-3.0, 0.5))

    def m(x: AffineParams):
        b = AffineBatch.from_points([x])
        return affine_matrix(b.scale, b.angle_deg, b.shift_px, size=(28, 28))[0]

    torch.testing.assert_close(m(p.then(q)), m(q) @ m(p))


def test_dict_round_trip_and_unknown_keys():
    p = AffineParams(0.7, -15.0, (2.0, 0.0))
    assert AffineParams.from_dict(p.to_dict()) == p
    assert AffineParams.from_dict({"scale": 0.5}) == AffineParams(scale=0.5)
    with pytest.raises(ValueError, match=r"unknown AffineParams field\(s\) \['angle'\]"):
        AffineParams.from_dict({"angle": 3.0})


def test_labels():
    assert AffineParams(scale=0.5).label() == "scale=0.5"
    assert AffineParams(angle_deg=30, shift_px=(2, 0)).label() == "angle=30°, shift=(2, 0)px"


def test_batch_from_points_and_indexing():
    points = [AffineParams(0.5), AffineParams(1.0, 15.0), AffineParams(1.0, 0.0, (1.0, -1.0))]
    batch = AffineBatch.from_points(points)
    assert len(batch) == 3
    assert list(batch) == points
    assert batch.scale.dtype == torch.float64
    assert list(AffineBatch.repeat(points[1], 2)) == [points[1]] * 2


def test_batch_validation():
    with pytest.raises(
        ValueError, match=r"AffineBatch.shift_px must have shape \(B, 2\); got \(3,\)"
    ):
        AffineBatch(torch.ones(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="disagree on the batch size"):
        AffineBatch(torch.ones(3), torch.zeros(2), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="AffineBatch.scale must be a floating tensor"):
        AffineBatch(torch.ones(3, dtype=torch.int64), torch.zeros(3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="scale must be finite and > 0; got 0.0"):
        AffineBatch(torch.tensor([1.0, 0.0]), torch.zeros(2), torch.zeros(2, 2))
