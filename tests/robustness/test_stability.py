"""Known answers of the stability metrics, on hand-made predictions and probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from geomrobust.robustness import (
    flip_probability,
    flip_rate,
    mean_abs_prob_change,
    pair_consistency,
)
from geomrobust.robustness._results import Predictions, summarise
from geomrobust.transforms import make_sweep, product_shifts


def test_flip_probability_counts_consecutive_changes():
    # 4 points × 3 images. Image 0 flips at steps 1 and 3, image 1 never, image 2 at step 2.
    points = np.array([[1, 5, 2], [2, 5, 2], [2, 5, 7], [3, 5, 7]])
    fp, shares = flip_probability(points)
    assert shares == (1 / 3, 1 / 3, 1 / 3)
    assert fp == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)  # per image, then averaged
    with pytest.raises(ValueError, match=r"needs \(P >= 2, N >= 1\)"):
        flip_probability(points[:1])


def test_flip_rate_and_pair_consistency_and_mac():
    assert flip_rate(0.1, 0.4) == pytest.approx(0.25)
    assert flip_rate(0.1, 0.0) is None
    assert pair_consistency(np.array([1, 2, 3, 4]), np.array([1, 0, 3, 0])) == 0.5
    with pytest.raises(ValueError, match="need two"):
        pair_consistency(np.array([1]), np.array([1, 2]))
    clean = np.array([0.9, 0.5, 0.2], dtype=np.float32)
    moved = np.array([0.6, 0.5, 0.4], dtype=np.float32)
    assert mean_abs_prob_change(clean, moved) == pytest.approx((0.3 + 0.0 + 0.2) / 3)


def test_eval_summaries_have_flip_probability_only_for_sequences():
    labels = np.array([0, 1])
    rows = np.array([[0, 1], [1, 1], [1, 0]])
    pred = Predictions(labels=labels, clean=rows[1], points=rows)
    line = make_sweep(angles=(-10.0, 0.0, 10.0))
    _, _, summary = summarise(line, pred, num_classes=2)
    assert summary.flip_probability == pytest.approx(0.5)
    assert summary.flip_share_by_pair == (0.5, 0.5)
    grid = make_sweep(shifts=product_shifts((0.0, 1.0), (0.0, 1.0))[:3])  # an L: not a line
    _, _, summary = summarise(grid, pred, num_classes=2)
    assert summary.flip_probability is None
    assert summary.flip_share_by_pair is None


def test_sequences_and_product_grids():
    assert make_sweep(angles=(-2.0, 0.0, 2.0)).is_sequence
    diagonal = make_sweep(shifts=((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)))
    assert diagonal.is_sequence
    cross = make_sweep(shifts=((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)))
    assert not cross.is_sequence
    grid = make_sweep(angles=(-2.0, 2.0), shifts=product_shifts((-1.0, 1.0), (-1.0, 0.0, 1.0)))
    assert len(grid) == 2 * 2 * 3
    assert not grid.is_sequence
    # scales, then angles, then x, then y: outermost first
    assert [(p.angle_deg, *p.shift_px) for p in grid.points[:4]] == [
        (-2.0, -1.0, -1.0),
        (-2.0, -1.0, 0.0),
        (-2.0, -1.0, 1.0),
        (-2.0, 1.0, -1.0),
    ]
