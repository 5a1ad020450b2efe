"""The report as data (sections, tables, figures, notes) and the formatting both renderers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geomrobust.reports._attack import AttackGroup
from geomrobust.reports._flips import FlipTable
from geomrobust.reports._inputs import Group
from geomrobust.reports._seeds import SeedRow
from geomrobust.reports._tables import ModelRow

__all__ = [
    "AttackSection",
    "FigureRecord",
    "GroupSection",
    "PairSection",
    "ReportDocument",
    "flip_intro",
    "flip_text",
    "fmt_count",
    "fmt_flops",
    "fmt_pct",
    "fmt_pp",
    "fmt_ratio",
    "versus_text",
]


@dataclass(frozen=True)
class FigureRecord:
    """One figure written under ``figures/``.

    Attributes:
        title: Short heading.
        caption: What the figure shows and how to read it.
        png, svg: The files (PNG is what the HTML embeds).
    """

    title: str
    caption: str
    png: Path
    svg: Path


@dataclass
class GroupSection:
    group: Group
    rows: list[ModelRow]
    figures: list[FigureRecord] = field(default_factory=list)
    seeds: list[SeedRow] | None = None


@dataclass
class PairSection:
    rows: list[dict[str, Any]]
    class_names: tuple[str, ...]
    figures: list[FigureRecord] = field(default_factory=list)


@dataclass
class AttackSection:
    group: AttackGroup
    rows: list[dict[str, Any]]
    figures: list[FigureRecord] = field(default_factory=list)


@dataclass
class ReportDocument:
    """Everything the HTML and Markdown renderers show.

    Attributes:
        title: The report's title.
        inputs: ``(model label, result file, schema)`` of every input.
        groups: One section per sweep group.
        pairs: The pair-classifier section, if any pair results were given.
        notes: What was left out and why.
        versions: Versions of geomrobust, torch and Python that made the report.
        attacks: One section per attack group.
        flips: The flip table, if any eval result is on an ordered sequence.
    """

    title: str
    inputs: list[tuple[str, str, str]]
    groups: list[GroupSection]
    pairs: PairSection | None
    notes: list[str]
    versions: dict[str, str]
    attacks: list[AttackSection] = field(default_factory=list)
    flips: FlipTable | None = None


def fmt_pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def fmt_pp(value: float) -> str:
    return f"{100 * value:+.1f} pp"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def flip_text(table: FlipTable, value: float | None) -> str:
    """A flip table's cell: a flip probability in percent, or a flip rate as a ratio."""
    return fmt_pct(value) if table.baseline is None else fmt_ratio(value)


def flip_intro(table: FlipTable) -> str:
    """What the flip table shows (plain text; the renderers escape it)."""
    text = (
        "Flip probability (FP): over a sweep that is one ordered sequence, the share of "
        "consecutive points at which an image's top-1 prediction changes, averaged over images "
        "(Hendrycks & Dietterich 2019); one column per sequence."
    )
    if table.baseline is None:
        return text + " mean FP is each model's mean over its sequences (lower is steadier)."
    return (
        text + f" Each cell is the flip rate FR = FP / FP of {table.baseline} on the same "
        f"sequence and data; mFR is each model's mean FR over the sequences it shares with "
        f"{table.baseline} (1 for {table.baseline} itself; below 1 flips less)."
    )


def fmt_count(value: int) -> str:
    return f"{value:,}"


def fmt_flops(value: int | None) -> str:
    if value is None:
        return "—"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def versus_text(row: ModelRow) -> tuple[str, str]:
    """``(mean difference with interval, McNemar summary)`` against the first model."""
    v = row.versus_first
    if v is None:
        return ("reference", "—") if row.why_not_compared is None else ("not compared", "—")
    lo, hi = v.mean_ci95
    mean = f"{fmt_pp(v.mean_difference)} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    if v.significant:
        mean += " *"
    mcnemar = (
        f"better at {v.better}, worse at {v.worse} of {v.points} points "
        f"(Holm-corrected, α = {v.alpha:g}); clean p = {v.clean_p:.2g}"
    )
    return mean, mcnemar
