"""The flip table of a report: flip probability over ordered sequences, or flip rate.

An eval result whose sweep is one ordered sequence has ``summary.flip_probability`` (FP):
the share of consecutive points at which an image's top-1 prediction changes, averaged over
images (Hendrycks & Dietterich 2019). The report shows, per model, its FP on every sequence
group and their mean ("mean FP"); with a baseline model, each FP divided by the baseline's
on the same sequence and data (the flip rate ``FR``, :func:`geomrobust.robustness.flip_rate`)
and their mean ("mFR"), so the baseline's own mFR is 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geomrobust.reports._inputs import Group, ReportError
from geomrobust.robustness import flip_rate

__all__ = ["FlipRow", "FlipTable", "flip_table"]


@dataclass(frozen=True)
class FlipRow:
    """One model's flips.

    Attributes:
        label: The model.
        values: Per sequence of :attr:`FlipTable.sequences`: the FP, or with a baseline the
            FR ``FP / FP_baseline``; ``None`` where the model (or the baseline) has no result
            on it, or the baseline never flips there.
        mean: Mean of the values that are not ``None`` (mean FP or mFR); ``None`` if none.
        sequences: How many values the mean is over.
    """

    label: str
    values: tuple[float | None, ...]
    mean: float | None
    sequences: int


@dataclass(frozen=True)
class FlipTable:
    """The flip table: sequence groups as columns, models as rows.

    Attributes:
        baseline: The baseline's label, or ``None`` (raw flip probabilities).
        sequences: The groups whose sweep is one ordered sequence.
        rows: One row per model with a result on at least one of them, in report order.
    """

    baseline: str | None
    sequences: tuple[Group, ...]
    rows: tuple[FlipRow, ...]

    @property
    def column(self) -> str:
        """The mean column's name: ``"mFR"`` with a baseline, else ``"mean FP"``."""
        return "mFR" if self.baseline is not None else "mean FP"


def _fp_by_label(group: Group) -> dict[str, float]:
    return {
        e.label: e.result.summary.flip_probability
        for e in group.entries
        if e.result.summary.flip_probability is not None
    }


def _check_baseline(baseline: str, labels: Sequence[str], with_fp: Sequence[str]) -> None:
    if baseline not in labels:
        close = difflib.get_close_matches(baseline, labels, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        valid = ", ".join(repr(label) for label in labels) or "none"
        raise ReportError(
            f"unknown baseline {baseline!r}; the models of this report's eval results are "
            f"labelled {valid}.{hint}"
        )
    if baseline not in with_fp:
        valid = ", ".join(repr(label) for label in with_fp) or "none"
        raise ReportError(
            f"baseline {baseline!r} has no eval result on an ordered sequence sweep (one "
            f"varying parameter, as --angles=-30:30:10), so it has no flip probability; models "
            f"with one: {valid}"
        )


def flip_table(groups: Sequence[Group], *, baseline: str | None = None) -> FlipTable | None:
    """Each model's flip probability per sequence and its mean, or relative to ``baseline``.

    Args:
        groups: The report's eval groups (:func:`geomrobust.reports.group_results`).
        baseline: A model's label as shown in the report; ``None`` for raw flip
            probabilities.

    Returns:
        The table, or ``None`` when no group is a sequence and there is no baseline.

    Raises:
        ReportError: ``baseline`` is not the label of an eval model of the report (the
            message lists them), or that model has no result on a sequence.
    """
    labels = list(dict.fromkeys(e.label for g in groups for e in g.entries))
    sequences = tuple(g for g in groups if _fp_by_label(g))
    fps = [_fp_by_label(g) for g in sequences]
    with_fp = [label for label in labels if any(label in fp for fp in fps)]
    if baseline is not None:
        _check_baseline(baseline, labels, with_fp)
    if not sequences:
        return None
    rows = []
    for label in with_fp:
        values: list[float | None] = []
        for fp in fps:
            value = fp.get(label)
            if value is not None and baseline is not None:
                base = fp.get(baseline)
                value = None if base is None else flip_rate(value, base)
            values.append(value)
        kept = [v for v in values if v is not None]
        rows.append(
            FlipRow(
                label=label,
                values=tuple(values),
                mean=float(np.mean(kept)) if kept else None,
                sequences=len(kept),
            )
        )
    return FlipTable(baseline=baseline, sequences=sequences, rows=tuple(rows))
