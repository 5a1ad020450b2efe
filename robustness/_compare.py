"""Paired comparison of two evaluation results on the same images and sweep.

Both results must come from the same data (fingerprint), the same sweep points and the
same transform convention, so image ``i`` under point ``p`` is the same input for both
models; the tests are then paired: an exact McNemar test per point and a paired bootstrap
interval of the mean-accuracy difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from geomrobust.robustness._eval_errors import IncompatibleResultsError
from geomrobust.robustness._metrics import mcnemar_exact, paired_bootstrap_ci
from geomrobust.robustness._results import EvalResult

__all__ = ["COMPARE_SCHEMA", "Comparison", "PointComparison", "compare_results"]

COMPARE_SCHEMA = "geomrobust.compare/1"
_FINGERPRINT_KEYS = ("dataset", "split", "n_images", "images_sha256", "labels_sha256")


@dataclass(frozen=True)
class PointComparison:
    """A and B at one point.

    Attributes:
        scale, angle_deg, shift_px: The point.
        accuracy_a, accuracy_b: The two accuracies.
        difference: ``accuracy_a - accuracy_b``.
        only_a: Images A gets right and B wrong.
        only_b: Images B gets right and A wrong.
        mcnemar_p: Two-sided exact McNemar p-value.
    """

    scale: float
    angle_deg: float
    shift_px: tuple[float, float]
    accuracy_a: float
    accuracy_b: float
    difference: float
    only_a: int
    only_b: int
    mcnemar_p: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "angle_deg": self.angle_deg,
            "shift_px": list(self.shift_px),
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "difference": self.difference,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "mcnemar_p": self.mcnemar_p,
        }


@dataclass(frozen=True)
class Comparison:
    """A minus B, point by point and on the sweep mean.

    Attributes:
        model_a, model_b: Model names (with checkpoints when known).
        n: Images compared.
        clean: The comparison on the untransformed images.
        points: One :class:`PointComparison` per sweep point.
        mean_accuracy_a, mean_accuracy_b: Sweep-mean accuracies.
        mean_accuracy_difference: Their difference (A - B).
        mean_difference_ci95: 95 % paired bootstrap interval of that difference.
        bootstrap_resamples, bootstrap_seed: How the interval was drawn.
    """

    model_a: str
    model_b: str
    n: int
    clean: PointComparison
    points: tuple[PointComparison, ...]
    mean_accuracy_a: float
    mean_accuracy_b: float
    mean_accuracy_difference: float
    mean_difference_ci95: tuple[float, float]
    bootstrap_resamples: int
    bootstrap_seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SCHEMA,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n": self.n,
            "clean": self.clean.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "mean_accuracy_a": self.mean_accuracy_a,
            "mean_accuracy_b": self.mean_accuracy_b,
            "mean_accuracy_difference": self.mean_accuracy_difference,
            "mean_difference_ci95": list(self.mean_difference_ci95),
            "bootstrap_resamples": self.bootstrap_resamples,
            "bootstrap_seed": self.bootstrap_seed,
        }


def check_comparable(a: EvalResult, b: EvalResult) -> None:
    """Raise :class:`IncompatibleResultsError` naming every way ``a`` and ``b`` differ."""
    problems = []
    fa, fb = a.data.fingerprint, b.data.fingerprint
    diff = [k for k in _FINGERPRINT_KEYS if fa.get(k) != fb.get(k)]
    if diff:
        shown = ", ".join(f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in diff[:3])
        problems.append(f"different data ({shown})")
    if a.sweep.points != b.sweep.points:
        problems.append(
            f"different sweeps ({a.sweep.name!r}, {len(a.sweep)} points vs "
            f"{b.sweep.name!r}, {len(b.sweep)} points)"
        )
    ta, tb = a.transform, b.transform
    conv_a = (ta.interpolation, ta.padding, ta.fill)
    conv_b = (tb.interpolation, tb.padding, tb.fill)
    if conv_a != conv_b:
        problems.append(
            f"different transform conventions (interpolation, padding, fill: {conv_a} vs {conv_b})"
        )
    for name, r in (("A", a), ("B", b)):
        if r.predictions is None:
            problems.append(f"result {name} has no per-image predictions")
    if not problems and not np.array_equal(a.predictions.labels, b.predictions.labels):
        problems.append("different labels in the predictions files")
    if problems:
        raise IncompatibleResultsError(
            "the results are not comparable: "
            + "; ".join(problems)
            + ". Evaluate both models on the same data split, sweep, interpolation and fill"
        )


def _point(p, correct_a: np.ndarray, correct_b: np.ndarray) -> PointComparison:
    only_a = int(np.count_nonzero(correct_a & ~correct_b))
    only_b = int(np.count_nonzero(correct_b & ~correct_a))
    acc_a, acc_b = float(correct_a.mean()), float(correct_b.mean())
    return PointComparison(
        scale=p.scale,
        angle_deg=p.angle_deg,
        shift_px=p.shift_px,
        accuracy_a=acc_a,
        accuracy_b=acc_b,
        difference=acc_a - acc_b,
        only_a=only_a,
        only_b=only_b,
        mcnemar_p=mcnemar_exact(only_a, only_b),
    )


def _name(r: EvalResult) -> str:
    return f"{r.model.name} ({r.model.checkpoint})" if r.model.checkpoint else r.model.name


def compare_results(
    a: EvalResult, b: EvalResult, *, resamples: int = 2000, seed: int = 0
) -> Comparison:
    """Compare ``a`` with ``b`` (A minus B) on their per-image predictions.

    Args:
        a, b: Results with predictions (:func:`geomrobust.robustness.load_result` attaches them).
        resamples: Bootstrap resamples of the images.
        seed: Seed of the bootstrap's ``numpy.random.Generator``.

    Returns:
        A :class:`Comparison`.

    Raises:
        IncompatibleResultsError: other data, sweep or transform convention, or missing
            predictions.
    """
    check_comparable(a, b)
    pa, pb = a.predictions, b.predictions
    if pa is None or pb is None:  # checked above; narrows the type
        raise IncompatibleResultsError("both results need per-image predictions")
    ca, cb = pa.correct(), pb.correct()
    clean = _point(a.clean.point, pa.clean == pa.labels, pb.clean == pb.labels)
    points = tuple(_point(p, ca[i], cb[i]) for i, p in enumerate(a.sweep.points))
    per_image = ca.mean(axis=0) - cb.mean(axis=0)
    mean_a = float(np.mean([p.accuracy_a for p in points]))
    mean_b = float(np.mean([p.accuracy_b for p in points]))
    return Comparison(
        model_a=_name(a),
        model_b=_name(b),
        n=int(pa.labels.shape[0]),
        clean=clean,
        points=points,
        mean_accuracy_a=mean_a,
        mean_accuracy_b=mean_b,
        mean_accuracy_difference=mean_a - mean_b,
        mean_difference_ci95=paired_bootstrap_ci(per_image, resamples=resamples, seed=seed),
        bootstrap_resamples=resamples,
        bootstrap_seed=seed,
    )
