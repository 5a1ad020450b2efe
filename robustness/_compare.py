"""Paired comparison of two results on the same images: two evaluations or two attacks.

Two evaluation results must come from the same data (fingerprint), the same sweep points
and the same transform convention, so image ``i`` under point ``p`` is the same input for
both models; the tests are then paired: an exact McNemar test per point and a paired
bootstrap interval of the mean-accuracy difference. When both sweeps are one ordered
sequence, the flip rate ``FP_a / FP_b`` (Hendrycks & Dietterich) is given too.

Two attack results must come from the same data and the same attack settings (box, ``k``,
grid, seed, canvas padding) and transform convention, so the draws and grid points of image
``i`` are the same for both models; each mode (clean, random, worst-of-k, grid) then gets an
exact McNemar test on the per-image outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from geomrobust.robustness._attack_result import MODES, AttackResult
from geomrobust.robustness._eval_errors import IncompatibleResultsError
from geomrobust.robustness._metrics import mcnemar_exact, paired_bootstrap_ci
from geomrobust.robustness._results import EvalResult
from geomrobust.robustness._stability import flip_rate

__all__ = [
    "ATTACK_SETTINGS",
    "COMPARE_ATTACK_SCHEMA",
    "COMPARE_SCHEMA",
    "AttackComparison",
    "Comparison",
    "ModeComparison",
    "PointComparison",
    "attack_settings",
    "check_attack_comparable",
    "compare_attack_results",
    "compare_results",
]

COMPARE_SCHEMA = "geomrobust.compare/1"
COMPARE_ATTACK_SCHEMA = "geomrobust.compare-attack/1"
_FINGERPRINT_KEYS = ("dataset", "split", "n_images", "images_sha256", "labels_sha256")
ATTACK_SETTINGS = ("box", "k", "grid", "seed", "canvas_pad")
"""The attack settings two attack results must share to be compared (or shown together)."""


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
        flip_probability_a, flip_probability_b: Each result's ``summary.flip_probability``
            when both sweeps are one ordered sequence, else ``None``.
        flip_rate: ``FR = FP_a / FP_b`` (:func:`geomrobust.robustness.flip_rate`), A's flip
            probability relative to B's on the same sequence; ``None`` without both flip
            probabilities or when B never flips. (Not the per-point ``flip_rate`` of an eval
            result, the share of images whose prediction differs from the clean one.)
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
    flip_probability_a: float | None = None
    flip_probability_b: float | None = None
    flip_rate: float | None = None

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
            "flip_probability_a": self.flip_probability_a,
            "flip_probability_b": self.flip_probability_b,
            "flip_rate": self.flip_rate,
        }


def _check_kinds(a: object, b: object, kind: type) -> None:
    """Refuse a pair of results that are not both of ``kind`` (an eval and an attack, say)."""
    if isinstance(a, kind) and isinstance(b, kind):
        return
    names = {EvalResult: "an eval result", AttackResult: "an attack result"}
    what = [names.get(type(r), f"a {type(r).__name__}") for r in (a, b)]
    raise IncompatibleResultsError(
        f"the results are not comparable: A is {what[0]} and B is {what[1]}; compare two "
        "eval results ('geomrobust eval') or two attack results ('geomrobust attack')"
    )


def _data_problems(fa: Mapping[str, Any], fb: Mapping[str, Any]) -> list[str]:
    diff = [k for k in _FINGERPRINT_KEYS if fa.get(k) != fb.get(k)]
    if not diff:
        return []
    shown = ", ".join(f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in diff[:3])
    return [f"different data ({shown})"]


def _convention(t) -> tuple[str, str, tuple[float, ...] | None]:
    return (t.interpolation, t.padding, t.fill)


def check_comparable(a: EvalResult, b: EvalResult) -> None:
    """Raise :class:`IncompatibleResultsError` naming every way ``a`` and ``b`` differ."""
    _check_kinds(a, b, EvalResult)
    problems = _data_problems(a.data.fingerprint, b.data.fingerprint)
    if a.sweep.points != b.sweep.points:
        problems.append(
            f"different sweeps ({a.sweep.name!r}, {len(a.sweep)} points vs "
            f"{b.sweep.name!r}, {len(b.sweep)} points)"
        )
    conv_a, conv_b = _convention(a.transform), _convention(b.transform)
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


def _name(r: EvalResult | AttackResult) -> str:
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
        IncompatibleResultsError: other data, sweep or transform convention, missing
            predictions, or a result that is not an :class:`EvalResult`.
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
    fp_a, fp_b = a.summary.flip_probability, b.summary.flip_probability
    if fp_a is None or fp_b is None:
        fp_a = fp_b = None
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
        flip_probability_a=fp_a,
        flip_probability_b=fp_b,
        flip_rate=None if fp_a is None or fp_b is None else flip_rate(fp_a, fp_b),
    )


# --------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class ModeComparison:
    """A and B under one attack mode, on the same images.

    Attributes:
        mode: ``"clean"``, ``"random"``, ``"worst_of_k"`` or ``"grid"``.
        accuracy_a, accuracy_b: The two accuracies under the mode.
        difference: ``accuracy_a - accuracy_b``.
        only_a: Images A gets right and B wrong.
        only_b: Images B gets right and A wrong.
        mcnemar_p: Two-sided exact McNemar p-value.
    """

    mode: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    only_a: int
    only_b: int
    mcnemar_p: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "difference": self.difference,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "mcnemar_p": self.mcnemar_p,
        }


@dataclass(frozen=True)
class AttackComparison:
    """A minus B under each mode of the same attack.

    Attributes:
        model_a, model_b: Model names (with checkpoints when known).
        n: Images compared.
        attack: The shared settings (:func:`attack_settings`) and the preset's name.
        modes: One :class:`ModeComparison` per mode, in :data:`MODES` order.
    """

    model_a: str
    model_b: str
    n: int
    attack: Mapping[str, Any]
    modes: tuple[ModeComparison, ...]

    def mode(self, name: str) -> ModeComparison:
        """The comparison under mode ``name``."""
        for m in self.modes:
            if m.mode == name:
                return m
        raise KeyError(f"no mode {name!r}; modes: {[m.mode for m in self.modes]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_ATTACK_SCHEMA,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n": self.n,
            "attack": dict(self.attack),
            "modes": [m.to_dict() for m in self.modes],
        }


def attack_settings(result: AttackResult) -> dict[str, Any]:
    """The settings of ``result`` that decide each image's draws and grid points
    (:data:`ATTACK_SETTINGS`), as JSON values (a grid tuple and its JSON list compare equal)."""
    return {k: json.loads(json.dumps(result.attack.get(k))) for k in ATTACK_SETTINGS}


def check_attack_comparable(a: AttackResult, b: AttackResult) -> None:
    """Raise :class:`IncompatibleResultsError` naming every way attacks ``a`` and ``b`` differ:
    the data, the settings (:data:`ATTACK_SETTINGS`), the transform convention, missing
    per-image outcomes or other labels; or either is not an :class:`AttackResult`."""
    _check_kinds(a, b, AttackResult)
    problems = _data_problems(a.data.fingerprint, b.data.fingerprint)
    sa, sb = attack_settings(a), attack_settings(b)
    diff = [k for k in ATTACK_SETTINGS if sa[k] != sb[k]]
    if diff:
        shown = ", ".join(f"{k}: {sa[k]!r} vs {sb[k]!r}" for k in diff)
        problems.append(f"different attack settings ({shown})")
    conv_a, conv_b = _convention(a.transform), _convention(b.transform)
    if conv_a != conv_b:
        problems.append(
            f"different transform conventions (interpolation, padding, fill: {conv_a} vs {conv_b})"
        )
    for name, r in (("A", a), ("B", b)):
        if r.arrays is None:
            problems.append(f"result {name} has no per-image outcomes (its .predictions.npz)")
    if not problems:
        for key in ("index", "labels"):
            if not np.array_equal(a.arrays[key], b.arrays[key]):
                problems.append(f"different {key} in the predictions files")
    if problems:
        raise IncompatibleResultsError(
            "the results are not comparable: "
            + "; ".join(problems)
            + ". Attack both models on the same data with the same settings (box, k, grid, "
            "seed, canvas padding), interpolation and fill"
        )


def compare_attack_results(a: AttackResult, b: AttackResult) -> AttackComparison:
    """Compare attack ``a`` with attack ``b`` (A minus B), mode by mode, image by image.

    Args:
        a, b: Results with their per-image outcomes
            (:func:`geomrobust.robustness.load_attack_result` attaches them).

    Returns:
        An :class:`AttackComparison`: per mode the two accuracies, their difference, the
        discordant counts and the exact McNemar p-value.

    Raises:
        IncompatibleResultsError: other data, attack settings or transform convention,
            missing outcomes, or a result that is not an :class:`AttackResult`.
    """
    check_attack_comparable(a, b)
    ca, cb = a.correct(), b.correct()
    modes = []
    for mode in MODES:
        x, y = ca[mode], cb[mode]
        only_a = int(np.count_nonzero(x & ~y))
        only_b = int(np.count_nonzero(y & ~x))
        acc_a = float(x.mean()) if x.size else 0.0
        acc_b = float(y.mean()) if y.size else 0.0
        modes.append(
            ModeComparison(
                mode=mode,
                accuracy_a=acc_a,
                accuracy_b=acc_b,
                difference=acc_a - acc_b,
                only_a=only_a,
                only_b=only_b,
                mcnemar_p=mcnemar_exact(only_a, only_b),
            )
        )
    return AttackComparison(
        model_a=_name(a),
        model_b=_name(b),
        n=int(ca["clean"].shape[0]),
        attack={**attack_settings(a), "preset": a.attack.get("preset")},
        modes=tuple(modes),
    )
