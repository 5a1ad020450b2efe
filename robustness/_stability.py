"""Stability metrics of the literature, as pure functions of per-image predictions.

* Flip probability (Hendrycks & Dietterich 2019, ImageNet-P / CIFAR-10-P): over an ordered
  sequence of transforms, the share of consecutive points at which an image's top-1
  prediction changes, averaged over images; the flip rate of two models is the ratio of
  their flip probabilities on the same sequence.
* Pair consistency (Zhang 2019): the share of images whose top-1 predictions agree under
  two independent draws of a transform.
* Mean absolute probability change (Azulay & Weiss 2019, "MAC"): the mean absolute change,
  against the clean image, of the probability of the clean top-1 class.

See ``docs/PROTOCOLS.md`` for the protocols and their sources.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "flip_probability",
    "flip_rate",
    "mean_abs_prob_change",
    "pair_consistency",
]


def flip_probability(points: np.ndarray) -> tuple[float, tuple[float, ...]]:
    """Flip probability of an ordered sequence of ``P >= 2`` points.

    Args:
        points: ``(P, N)`` top-1 predictions, points in sequence order.

    Returns:
        ``(fp, shares)``: ``shares[j]`` is the share of images whose prediction at point
        ``j + 1`` differs from point ``j`` (``P - 1`` values), and ``fp`` their mean, which
        equals the per-image share of changing steps averaged over images.

    Raises:
        ValueError: fewer than 2 points or no images.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] == 0:
        raise ValueError(f"flip probability needs (P >= 2, N >= 1) predictions; got {points.shape}")
    shares = (points[1:] != points[:-1]).mean(axis=1)
    return float(shares.mean()), tuple(float(s) for s in shares)


def flip_rate(fp_a: float, fp_b: float) -> float | None:
    """``FR = FP_a / FP_b``: model a's flip probability relative to model b's on the same
    sequence (Hendrycks & Dietterich normalise by AlexNet); ``None`` if ``fp_b`` is 0."""
    return None if fp_b == 0 else float(fp_a) / float(fp_b)


def pair_consistency(first: np.ndarray, second: np.ndarray) -> float:
    """Share of images whose predictions under two independent draws agree.

    Args:
        first, second: ``(N,)`` top-1 predictions of the same images.

    Raises:
        ValueError: shapes differ or there are no images.
    """
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape or first.ndim != 1 or first.shape[0] == 0:
        raise ValueError(f"need two (N,) arrays, N >= 1; got {first.shape} and {second.shape}")
    return float((first == second).mean())


def mean_abs_prob_change(clean_prob: np.ndarray, point_prob: np.ndarray) -> float:
    """Mean over images of ``|p_point - p_clean|``, both the probability of the clean top-1
    class (Azulay & Weiss's MAC).

    Args:
        clean_prob: ``(N,)`` probability of each image's clean top-1 class, clean.
        point_prob: ``(N,)`` probability of the same class under the transform.
    """
    clean_prob, point_prob = np.asarray(clean_prob), np.asarray(point_prob)
    if clean_prob.shape != point_prob.shape or clean_prob.ndim != 1:
        raise ValueError(f"need two (N,) arrays; got {clean_prob.shape} and {point_prob.shape}")
    if clean_prob.shape[0] == 0:
        return 0.0
    diff = point_prob.astype(np.float64) - clean_prob.astype(np.float64)
    return float(np.abs(diff).mean())
