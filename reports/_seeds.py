"""The training-seeds table of a report group: each model's mean over seeds, and the
difference from the group's first model with a Student-t interval over seed pairs.

It answers the run-to-run question (would the difference hold if both models were trained
again?), next to the model table's per-image paired tests, which answer the test-set
question for the weights shown (see :mod:`geomrobust.robustness._seeds`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from geomrobust.reports._inputs import EvalEntry, Group
from geomrobust.robustness import SeedDifference

__all__ = ["SEEDS_INTRO", "SeedRow", "difference_text", "seed_table", "seed_text"]


@dataclass(frozen=True)
class SeedRow:
    """One model of the seeds table.

    Attributes:
        label: The model.
        seeds: Its training seeds (one result each), lowest first.
        clean, mean: The clean and the sweep-mean accuracy over seeds, as a
            :class:`SeedDifference` against the first model (``b``), or against itself for
            the first model; ``None`` where they cannot be paired (:attr:`why_not_paired`).
        own_clean, own_mean: Mean and sd over this model's own seeds, ``(mean, sd | None)``.
        why_not_paired: Why the difference from the first model is not given, or ``""``.
    """

    label: str
    seeds: tuple[int | None, ...]
    own_clean: tuple[float, float | None]
    own_mean: tuple[float, float | None]
    clean: SeedDifference | None
    mean: SeedDifference | None
    why_not_paired: str = ""


def _seed_entries(group: Group) -> dict[str, tuple[EvalEntry, ...]]:
    several = dict(group.seeds)
    return {e.label: several.get(e.label, (e,)) for e in group.entries}


def _own(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample sd over seeds (no sd for one seed)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_table(group: Group) -> list[SeedRow] | None:
    """The seeds table of ``group``, or ``None`` when no model has several seeds."""
    if not group.seeds:
        return None
    entries = _seed_entries(group)
    first_label = group.entries[0].label
    first = {e.result.model.training_seed: e.result for e in entries[first_label]}
    rows = []
    for label, members in entries.items():
        results = [e.result for e in members]
        seeds = tuple(r.model.training_seed for r in results)
        clean = [r.summary.clean_accuracy for r in results]
        mean = [r.summary.mean_accuracy for r in results]
        why = ""
        d_clean = d_mean = None
        if set(seeds) != set(first):
            why = f"seeds {list(seeds)} differ from {first_label}'s {sorted(first, key=str)}"
        else:
            ref = [first[s] for s in seeds]
            d_clean = SeedDifference.of("clean", clean, [r.summary.clean_accuracy for r in ref])
            d_mean = SeedDifference.of("mean", mean, [r.summary.mean_accuracy for r in ref])
        rows.append(
            SeedRow(
                label=label,
                seeds=seeds,
                own_clean=_own(clean),
                own_mean=_own(mean),
                clean=d_clean,
                mean=d_mean,
                why_not_paired=why,
            )
        )
    return rows


def seed_text(value: tuple[float, float | None]) -> str:
    """``"95.2 ± 0.4 %"`` (mean ± sd over seeds), or ``"95.2 %"`` for one seed."""
    mean, sd = value
    return f"{100 * mean:.1f} %" if sd is None else f"{100 * mean:.1f} ± {100 * sd:.1f} %"


def difference_text(d: SeedDifference | None, why: str) -> str:
    """``"+4.1 pp [+2.0, +6.2]"``: mean over seed pairs with its 95 % t-interval."""
    if d is None:
        return why or "—"
    text = f"{100 * d.difference:+.1f} pp"
    if d.ci95 is not None:
        text += f" [{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]"
    return text


SEEDS_INTRO = (
    "Models given with several training seeds (one result per seed: same data and sweep, "
    "checkpoints with the same training settings): mean ± sd over seeds, and the "
    "difference from the first model as the mean over seed pairs (seed s with seed s) with "
    "a 95 % Student-t interval. This is run-to-run variation: would the difference hold if "
    "both were trained again? The table above and the figures show each model's lowest "
    "seed, and their paired tests are over the images (test-set sampling variation)."
)
