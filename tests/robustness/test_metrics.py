"""Metrics against values small enough to check by hand, and against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geomrobust.robustness import (
    confusion_matrix,
    mcnemar_exact,
    paired_bootstrap_ci,
    wilson_interval,
)
from geomrobust.robustness._metrics import per_class_accuracy


def _wilson_reference(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Textbook formula: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.mark.parametrize(("k", "n"), [(5, 10), (1, 3), (97, 100), (3, 359)])
def test_wilson_matches_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_reference(k, n), abs=1e-12)


def test_wilson_matches_formula_on_a_grid_and_other_z():
    pairs = [(k, n) for n in (*range(1, 41), 999, 10_000, 1_000_000) for k in (1, n // 3, n - 1)]
    for z in (1.959963984540054, 1.0, 2.5758293035489004):
        for k, n in pairs:
            if 0 < k < n:
                expected = _wilson_reference(k, n, z)
                assert wilson_interval(k, n, z=z) == pytest.approx(expected, abs=1e-12), (k, n, z)
    # A wider z gives a wider interval.
    lo90, hi90 = wilson_interval(8, 10, z=1.6448536269514722)
    lo99, hi99 = wilson_interval(8, 10, z=2.5758293035489004)
    assert lo99 < lo90 < 0.8 < hi90 < hi99


def test_wilson_known_values_and_edges():
    # 5/10: the classic example, (0.2366, 0.7634).
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    # 8/10 by hand: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.716740,
    # half 1.96 · sqrt(0.016 + 1.96²/400) / (1 + 1.96²/10) = 0.226576.
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.490164, abs=2e-6)
    assert hi == pytest.approx(0.943316, abs=2e-6)
    assert type(lo) is float
    assert type(hi) is float
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_errors():
    with pytest.raises(ValueError, match=r"correct must be <= n; got correct=4, n=3"):
        wilson_interval(4, 3)
    with pytest.raises(ValueError, match=r"n must be >= 0; got -1"):
        wilson_interval(0, -1)
    with pytest.raises(TypeError, match=r"correct must be an int; got float"):
        wilson_interval(0.5, 3)
    for z in (-1.0, float("nan"), 9.0):  # level < 0, NaN, and rounding to exactly 1
        with pytest.raises(ValueError, match=r"z must give a confidence level in \[0, 1\)"):
            wilson_interval(8, 10, z=z)


def test_confusion_matrix_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    c = confusion_matrix(labels, preds, 3)
    assert c.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_accuracy(c) == [0.5, 1.0, pytest.approx(2 / 3)]
    assert per_class_accuracy(np.array([[1, 0], [0, 0]])) == [1.0, None]


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match=r"predictions must lie in \[0, 2\); got \[0, 2\]"):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"must both have shape \(N,\)"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)


def _mcnemar_reference(b: int, c: int) -> float:
    # min(1, 2 · sum(comb(n, k), k <= min(b, c)) / 2**n), rounded once (int / int).
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, (2 * tail) / 2**n)


@pytest.mark.parametrize(
    ("b", "c"),
    [
        (0, 0),
        (5, 0),
        (0, 5),
        (1, 1),
        (3, 9),
        (40, 61),
        (600, 500),
        (2400, 2600),
        (2000, 3000),
        (4000, 6000),  # p ≈ 1.7e-89
    ],
)
def test_mcnemar_exact(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(_mcnemar_reference(b, c), rel=1e-11)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)


def test_mcnemar_known_values():
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625, rel=1e-14)  # 2 / 2**5
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375, rel=1e-14)  # 2 · (1 + 10) / 2**10
    assert mcnemar_exact(1, 1) == 1.0
    assert mcnemar_exact(2500, 2500) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_errors():
    with pytest.raises(ValueError, match=r"only_a must be >= 0; got -1"):
        mcnemar_exact(-1, 3)
    with pytest.raises(TypeError, match=r"only_b must be an int; got float"):
        mcnemar_exact(3, 2.0)
    with pytest.raises(TypeError, match=r"only_a must be an int; got bool"):
        mcnemar_exact(True, 3)


def test_bootstrap_seeded_and_leaves_global_rng_alone():
    rng = np.random.default_rng(1)
    diff = rng.integers(-1, 2, size=500).astype(float)
    state = np.random.get_state()[1].copy()
    a = paired_bootstrap_ci(diff, resamples=300, seed=7)
    b = paired_bootstrap_ci(diff, resamples=300, seed=7)
    assert a == b
    assert np.array_equal(np.random.get_state()[1], state)
    assert a[0] < diff.mean() < a[1]
    assert paired_bootstrap_ci(np.full(20, 0.25), resamples=50) == (0.25, 0.25)
    assert paired_bootstrap_ci(diff, resamples=300, seed=8) != a


def test_bootstrap_by_hand():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % and
    # 97.5 % quantiles are 0 and 1, the 30 % and 70 % ones both 0.5.
    assert paired_bootstrap_ci(np.array([0.0, 1.0]), resamples=1000, seed=3) == (0.0, 1.0)
    assert paired_bootstrap_ci(np.array([0.0, 1.0]), resamples=1000, seed=3, level=0.4) == (
        0.5,
        0.5,
    )


def test_bootstrap_errors():
    with pytest.raises(ValueError, match=r"resamples must be an int >= 1; got 0"):
        paired_bootstrap_ci(np.zeros(3), resamples=0)
    with pytest.raises(ValueError, match=r"per_image_diff must have shape \(N,\)"):
        paired_bootstrap_ci(np.zeros((3, 2)))
