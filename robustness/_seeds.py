"""Several training seeds per model: which results are seeds of one model, and the
difference between two models across seeds.

Two sources of variation answer two different questions:

* **run-to-run (seed) variation**: would the difference between the models hold if both
  were trained again? Each training seed gives one difference between the models; the
  mean over seed pairs with a Student-t interval (``n - 1`` degrees of freedom) answers it.
  With 3 seeds the interval is wide (``t = 4.30``), as it should be.
* **test-set sampling variation**: for these trained weights, would the difference hold on
  other images from the same distribution? The per-image paired tests of
  :func:`geomrobust.robustness.compare_results` (exact McNemar, paired bootstrap) answer it,
  one seed pair at a time. They say nothing about retraining.

Results are seeds of one model when they record the same model name and the same training
recipe (``model.training_recipe``: the checkpoint's training settings without the seed) and
different training seeds (``model.training_seed``). Seed pairs match seed ``s`` of A with seed
``s`` of B: the DCNv2 twin trained with seed ``s`` starts from the regular model's initial
weights of seed ``s`` and sees the same validation split and batch order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from geomrobust.robustness._compare import Comparison, check_comparable, compare_results
from geomrobust.robustness._eval_errors import IncompatibleResultsError
from geomrobust.robustness._results import EvalResult
from geomrobust.transforms import AffineParams

__all__ = [
    "COMPARE_SEEDS_SCHEMA",
    "SeedComparison",
    "SeedDifference",
    "compare_seeds",
    "model_key",
    "seed_groups",
    "t_interval",
]

COMPARE_SEEDS_SCHEMA = "geomrobust.compare-seeds/1"


def model_key(result: EvalResult) -> tuple[str, str]:
    """What makes results seeds of one model: the name and the training recipe (else the
    weights' sha256, so that results of checkpoints without a training record are each a
    model of their own)."""
    m = result.model
    return m.name, m.training_recipe or m.checkpoint_sha256 or m.checkpoint or ""


def seed_groups(results: Sequence[EvalResult]) -> list[list[int]]:
    """Indices of ``results`` grouped by model (:func:`model_key`), in order of appearance.

    Raises:
        IncompatibleResultsError: two results of one model with the same training seed (or,
            for a model without a training record, the same result twice).
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, result in enumerate(results):
        groups.setdefault(model_key(result), []).append(i)
    for members in groups.values():
        seeds = [results[i].model.training_seed for i in members]
        if len(members) > 1 and (None in seeds or len(set(seeds)) < len(seeds)):
            raise IncompatibleResultsError(
                f"{len(members)} results of model {results[members[0]].model.name!r} do not "
                f"record distinct training seeds ({seeds}); results are seeds of one model "
                "only when their checkpoints record the same training settings and different "
                "seeds (geomrobust train --seed)"
            )
    return list(groups.values())


def t_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of ``values`` (``None`` with fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    mean = float(x.mean())
    return mean - float(half), mean + float(half)


@dataclass(frozen=True)
class SeedDifference:
    """One figure (an accuracy) of A and B across seed pairs.

    Attributes:
        label: ``"clean"``, ``"mean"`` (the sweep mean) or the point's label.
        a, b: The figure per seed, in :attr:`SeedComparison.seeds` order.
        mean_a, mean_b: Their means over seeds.
        difference: Mean over seed pairs of ``a - b``.
        sd: Standard deviation of the per-pair differences (``None`` for one pair).
        ci95: 95 % Student-t interval of ``difference`` over seed pairs (``None`` for one
            pair).
    """

    label: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    mean_a: float
    mean_b: float
    difference: float
    sd: float | None
    ci95: tuple[float, float] | None

    @classmethod
    def of(cls, label: str, a: Sequence[float], b: Sequence[float]) -> SeedDifference:
        d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        return cls(
            label=label,
            a=tuple(float(v) for v in a),
            b=tuple(float(v) for v in b),
            mean_a=float(np.mean(a)),
            mean_b=float(np.mean(b)),
            difference=float(d.mean()),
            sd=float(d.std(ddof=1)) if d.size > 1 else None,
            ci95=t_interval(d),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "a": list(self.a),
            "b": list(self.b),
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "difference": self.difference,
            "sd": self.sd,
            "ci95": None if self.ci95 is None else list(self.ci95),
        }


@dataclass(frozen=True)
class SeedComparison:
    """A minus B across training seeds, and per seed pair on the same images.

    Attributes:
        model_a, model_b: Model names.
        seeds: Training seeds of the pairs (``None`` entries when a single result per model
            records none).
        n: Images per result.
        clean, mean: The clean accuracy and the sweep-mean accuracy across seeds.
        points: Each sweep point across seeds.
        per_seed: The per-image paired comparison of each seed pair (test-set sampling
            variation), in :attr:`seeds` order.
    """

    model_a: str
    model_b: str
    seeds: tuple[int | None, ...]
    n: int
    clean: SeedDifference
    mean: SeedDifference
    points: tuple[SeedDifference, ...]
    per_seed: tuple[Comparison, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": COMPARE_SEEDS_SCHEMA,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "seeds": list(self.seeds),
            "n": self.n,
            "clean": self.clean.to_dict(),
            "mean": self.mean.to_dict(),
            "points": [p.to_dict() for p in self.points],
            "per_seed": [
                {"seed": s, **c.to_dict()} for s, c in zip(self.seeds, self.per_seed, strict=True)
            ],
        }


def _pairs(a: Sequence[EvalResult], b: Sequence[EvalResult]) -> list[tuple[EvalResult, EvalResult]]:
    """Seed ``s`` of A with seed ``s`` of B; both must have the same seeds."""
    by_seed_a = {r.model.training_seed: r for r in a}
    by_seed_b = {r.model.training_seed: r for r in b}
    if len(a) == len(b) == 1:
        return [(a[0], b[0])]
    if set(by_seed_a) != set(by_seed_b):
        only_a = sorted(set(by_seed_a) - set(by_seed_b), key=str)
        only_b = sorted(set(by_seed_b) - set(by_seed_a), key=str)
        raise IncompatibleResultsError(
            f"A and B must have results for the same training seeds, to pair seed s of A with "
            f"seed s of B; only A has seeds {only_a}, only B has {only_b}"
        )
    return [(by_seed_a[s], by_seed_b[s]) for s in sorted(by_seed_a, key=lambda s: (s is None, s))]


def compare_seeds(
    a: Sequence[EvalResult],
    b: Sequence[EvalResult],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> SeedComparison:
    """Compare two models given several training seeds each (one result per seed).

    Args:
        a, b: The results of model A and of model B, one per training seed, all on the same
            data, sweep and transform convention, with their per-image predictions.
        resamples, seed: The paired bootstrap of each seed pair's comparison.

    Raises:
        IncompatibleResultsError: results of different data, sweeps or conventions, results
            of A (or of B) that are not seeds of one model, or seed sets that differ.
    """
    if not a or not b:
        raise IncompatibleResultsError("compare_seeds needs at least one result per model")
    for side, results in (("A", a), ("B", b)):
        groups = seed_groups(results)
        if len(groups) > 1:
            names = [results[g[0]].model.name for g in groups]
            raise IncompatibleResultsError(
                f"the results given for {side} are of {len(groups)} models ({names}), not "
                "seeds of one: seeds share the model name and the training settings"
            )
    pairs = _pairs(a, b)
    first = pairs[0][0]
    for ra, rb in pairs:
        check_comparable(first, ra)
        check_comparable(first, rb)
    per_seed = tuple(compare_results(ra, rb, resamples=resamples, seed=seed) for ra, rb in pairs)
    labels = [AffineParams(p.scale, p.angle_deg, p.shift_px).label() for p in first.sweep.points]
    points = tuple(
        SeedDifference.of(
            label,
            [c.points[i].accuracy_a for c in per_seed],
            [c.points[i].accuracy_b for c in per_seed],
        )
        for i, label in enumerate(labels)
    )
    return SeedComparison(
        model_a=per_seed[0].model_a,
        model_b=per_seed[0].model_b,
        seeds=tuple(ra.model.training_seed for ra, _ in pairs),
        n=per_seed[0].n,
        clean=SeedDifference.of(
            "clean", [c.clean.accuracy_a for c in per_seed], [c.clean.accuracy_b for c in per_seed]
        ),
        mean=SeedDifference.of(
            "mean", [c.mean_accuracy_a for c in per_seed], [c.mean_accuracy_b for c in per_seed]
        ),
        points=points,
        per_seed=per_seed,
    )
