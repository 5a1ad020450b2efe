"""The numbers of a report: the tidy per-point table and the side-by-side model table.

Rows are plain dicts of numbers (never pre-rounded strings); the renderers format them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geomrobust.reports._inputs import EvalEntry, Group, PairEntry
from geomrobust.reports._stats import holm_reject
from geomrobust.robustness import IncompatibleResultsError, compare_results

__all__ = [
    "SUMMARY_COLUMNS",
    "ModelRow",
    "VersusFirst",
    "model_table",
    "pair_table",
    "summary_csv",
    "summary_rows",
]

SUMMARY_COLUMNS = (
    "group",
    "model",
    "checkpoint",
    "result_file",
    "dataset",
    "split",
    "sweep",
    "point",
    "scale",
    "angle_deg",
    "shift_x_px",
    "shift_y_px",
    "n",
    "correct",
    "accuracy",
    "ci95_low",
    "ci95_high",
    "flip_rate",
)


def summary_rows(groups: Sequence[Group]) -> list[dict[str, Any]]:
    """One row per model × point (the clean images first, as point ``"clean"``)."""
    rows = []
    for group in groups:
        for entry in group.entries:
            r = entry.result
            named = [("clean", r.clean), *((str(i), p) for i, p in enumerate(r.points))]
            for point_id, p in named:
                rows.append(
                    {
                        "group": group.slug,
                        "model": entry.label,
                        "checkpoint": r.model.checkpoint or "",
                        "result_file": str(entry.path),
                        "dataset": r.data.dataset,
                        "split": r.data.split,
                        "sweep": r.sweep.name,
                        "point": point_id,
                        "scale": p.scale,
                        "angle_deg": p.angle_deg,
                        "shift_x_px": p.shift_px[0],
                        "shift_y_px": p.shift_px[1],
                        "n": p.n,
                        "correct": p.correct,
                        "accuracy": p.accuracy,
                        "ci95_low": p.ci95[0],
                        "ci95_high": p.ci95[1],
                        "flip_rate": p.flip_rate,
                    }
                )
    return rows


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV text (full float precision, ``repr`` round-trips)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue()


@dataclass(frozen=True)
class VersusFirst:
    """A model against the group's first model, on the same images (B minus first).

    Attributes:
        mean_difference: Sweep-mean accuracy difference.
        mean_ci95: Paired bootstrap 95 % interval of that difference.
        clean_p: Exact McNemar p-value on the clean images.
        better, worse: Points where this model is significantly better or worse than the
            first: exact McNemar, Holm-corrected over the ``points`` compared at
            family-wise level ``alpha`` (as the difference heatmaps mark their cells).
        points: Points compared (the Holm family).
        alpha: The family-wise significance level used for ``better`` and ``worse``.
    """

    mean_difference: float
    mean_ci95: tuple[float, float]
    clean_p: float
    better: int
    worse: int
    points: int
    alpha: float

    @property
    def significant(self) -> bool:
        """Whether the mean difference's interval excludes zero."""
        lo, hi = self.mean_ci95
        return lo > 0 or hi < 0


@dataclass(frozen=True)
class ModelRow:
    """One model in a group's side-by-side table.

    ``flops`` is ``None`` when the model is not in the registry (a custom factory, say);
    ``versus_first`` is ``None`` for the first model or when predictions are missing, and
    ``why_not_compared`` says why in that case.
    """

    label: str
    params: int
    flops: int | None
    clean: float
    mean: float
    worst: float
    worst_point: str
    all_points: float
    consistency: float
    versus_first: VersusFirst | None
    why_not_compared: str | None = None


def _versus(first: EvalEntry, other: EvalEntry, *, alpha: float, seed: int) -> VersusFirst:
    cmp = compare_results(other.result, first.result, resamples=2000, seed=seed)
    reject = holm_reject([p.mcnemar_p for p in cmp.points], alpha)
    better = sum(bool(r) and p.difference > 0 for p, r in zip(cmp.points, reject, strict=True))
    worse = sum(bool(r) and p.difference < 0 for p, r in zip(cmp.points, reject, strict=True))
    return VersusFirst(
        mean_difference=cmp.mean_accuracy_difference,
        mean_ci95=cmp.mean_difference_ci95,
        clean_p=cmp.clean.mcnemar_p,
        better=better,
        worse=worse,
        points=len(cmp.points),
        alpha=alpha,
    )


def model_table(
    group: Group, flops: Mapping[str, int | None], *, alpha: float = 0.05, seed: int = 0
) -> list[ModelRow]:
    """The side-by-side rows of a group; each model after the first is compared with it."""
    first = group.entries[0]
    rows = []
    for i, entry in enumerate(group.entries):
        s = entry.result.summary
        versus, why = None, None
        if i > 0:
            try:
                versus = _versus(first, entry, alpha=alpha, seed=seed)
            except IncompatibleResultsError as exc:
                why = str(exc)
        rows.append(
            ModelRow(
                label=entry.label,
                params=entry.result.model.params,
                flops=flops.get(entry.label),
                clean=s.clean_accuracy,
                mean=s.mean_accuracy,
                worst=s.worst_accuracy,
                worst_point=s.worst_point.label(),
                all_points=s.all_points_accuracy,
                consistency=s.consistency,
                versus_first=versus,
                why_not_compared=why,
            )
        )
    return rows


def pair_table(entries: Sequence[PairEntry]) -> list[dict[str, Any]]:
    """One row per pair classifier: overall accuracy with its interval and per-class recall."""
    rows = []
    for e in entries:
        r = e.result
        rows.append(
            {
                "model": e.label,
                "params": r.model.params,
                "pairs": r.n,
                "accuracy": r.accuracy,
                "ci95": r.ci95,
                "recall": dict(zip(r.class_names, r.per_class_recall, strict=True)),
            }
        )
    return rows
