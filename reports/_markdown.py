"""``report.md``: the same tables as the HTML page, with figures linked from ``figures/``."""

from __future__ import annotations

from geomrobust.reports._attack import MODE_NAMES
from geomrobust.reports._document import (
    AttackSection,
    FigureRecord,
    GroupSection,
    PairSection,
    ReportDocument,
    flip_intro,
    flip_text,
    fmt_count,
    fmt_flops,
    fmt_pct,
    versus_text,
)
from geomrobust.reports._flips import FlipTable
from geomrobust.reports._seeds import SEEDS_INTRO, SeedRow, difference_text, seed_text

__all__ = ["md_escape", "render_markdown"]

_SPECIAL = "\\`*_{}[]()#+!|<>"


def md_escape(text: str) -> str:
    """Text that Markdown shows literally (no markup, no raw HTML, no broken table cells)."""
    out = []
    for ch in str(text):
        if ch in "<>":
            out.append("&lt;" if ch == "<" else "&gt;")
        elif ch in _SPECIAL:
            out.append("\\" + ch)
        elif ch in "\r\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _figure(fig: FigureRecord) -> list[str]:
    return [
        f"![{md_escape(fig.title)}](figures/{fig.png.name})",
        "",
        f"*{md_escape(fig.title)}.* {md_escape(fig.caption)} ([SVG](figures/{fig.svg.name}))",
        "",
    ]


def _group(section: GroupSection) -> list[str]:
    g = section.group
    r = g.first
    lines = [
        f"## {md_escape(g.title)}",
        "",
        f"{fmt_count(r.data.n)} images; {len(r.sweep)} points; "
        f"{md_escape(r.transform.interpolation)} interpolation. Δ mean is each model minus "
        f"**{md_escape(g.entries[0].label)}** with a paired bootstrap 95 % interval (\\* when "
        "it excludes 0). McNemar counts the points where the exact McNemar test on the same "
        "images finds a difference, Holm-corrected over the sweep's points.",
        "",
    ]
    rows = []
    for row in section.rows:
        mean_diff, mcnemar = versus_text(row)
        if row.why_not_compared:
            mcnemar = row.why_not_compared
        rows.append(
            [
                md_escape(row.label),
                fmt_count(row.params),
                fmt_flops(row.flops),
                fmt_pct(row.clean),
                fmt_pct(row.mean),
                f"{fmt_pct(row.worst)} ({md_escape(row.worst_point)})",
                fmt_pct(row.all_points),
                fmt_pct(row.consistency),
                md_escape(mean_diff),
                md_escape(mcnemar),
            ]
        )
    header = ["model", "params", "FLOPs", "clean", "mean", "worst", "all points"]
    header += ["consistency", "Δ mean vs first", "McNemar vs first (Holm-corrected)"]
    lines += _table(header, rows)
    lines.append("")
    if section.seeds:
        lines += _seeds(section.seeds)
    for fig in section.figures:
        lines += _figure(fig)
    return lines


def _seeds(rows: list[SeedRow]) -> list[str]:
    table = [
        [
            md_escape(row.label),
            ", ".join(str(s) for s in row.seeds),
            seed_text(row.own_clean),
            seed_text(row.own_mean),
            md_escape(difference_text(row.clean, row.why_not_paired)),
            md_escape(difference_text(row.mean, row.why_not_paired)),
        ]
        for row in rows
    ]
    header = ["model", "seeds", "clean", "mean", "Δ clean vs first", "Δ mean vs first"]
    return ["### Across training seeds", "", md_escape(SEEDS_INTRO), "", *_table(header, table), ""]


def _pairs(section: PairSection) -> list[str]:
    names = list(section.class_names)
    rows = []
    for row in section.rows:
        lo, hi = row["ci95"]
        rows.append(
            [
                md_escape(row["model"]),
                fmt_count(row["params"]),
                fmt_count(row["pairs"]),
                f"{fmt_pct(row['accuracy'])} [{fmt_pct(lo)}, {fmt_pct(hi)}]",
                *(fmt_pct(row["recall"].get(n)) for n in names),
            ]
        )
    header = ["model", "params", "pairs", "accuracy [95 % CI]", *map(md_escape, names)]
    lines = ["## Transformation-pair classifiers", "", *_table(header, rows), ""]
    for fig in section.figures:
        lines += _figure(fig)
    return lines


def _flips(table: FlipTable) -> list[str]:
    rows = [
        [
            md_escape(row.label),
            *(flip_text(table, v) for v in row.values),
            flip_text(table, row.mean),
        ]
        for row in table.rows
    ]
    header = ["model", *(md_escape(g.title) for g in table.sequences), table.column]
    intro = ["## Flips along sequences", "", md_escape(flip_intro(table)), ""]
    return [*intro, *_table(header, rows), ""]


def _attack(section: AttackSection) -> list[str]:
    g = section.group
    r = g.first
    lines = [
        f"## {md_escape(g.title)}",
        "",
        f"{fmt_count(r.data.n)} images. Accuracy on the clean images, under one random "
        "transform in the box, under the worst of k random transforms (highest loss) and under "
        "every point of the grid (correct only if no grid point fools the model), each with "
        "its 95 % Wilson interval; pair consistency is the share of images whose predictions "
        "agree under two independent random transforms.",
        "",
    ]
    rows = []
    for row in section.rows:
        cells = [
            f"{fmt_pct(row['accuracy'][m])} [{fmt_pct(row['ci95'][m][0])}, "
            f"{fmt_pct(row['ci95'][m][1])}]"
            for m in MODE_NAMES
        ]
        rows.append(
            [
                md_escape(row["model"]),
                fmt_count(row["params"]),
                fmt_count(row["n"]),
                *cells,
                fmt_pct(row["pair_consistency"]),
            ]
        )
    header = ["model", "params", "n", *(f"{n} [95 % CI]" for n in MODE_NAMES.values())]
    lines += _table([*header, "pair consistency"], rows)
    lines.append("")
    for fig in section.figures:
        lines += _figure(fig)
    return lines


def render_markdown(doc: ReportDocument) -> str:
    """The report as Markdown text."""
    versions = ", ".join(f"{k} {v}" for k, v in doc.versions.items())
    lines = [f"# {md_escape(doc.title)}", "", f"Made by {md_escape(versions)}.", ""]
    lines += ["## Inputs", ""]
    lines += _table(
        ["model", "result file", "schema"],
        [
            [md_escape(label), md_escape(path), md_escape(schema)]
            for label, path, schema in doc.inputs
        ],
    )
    lines.append("")
    if doc.notes:
        lines += ["Left out:", "", *(f"- {md_escape(n)}" for n in doc.notes), ""]
    for section in doc.groups:
        lines += _group(section)
    if doc.flips is not None:
        lines += _flips(doc.flips)
    for attack in doc.attacks:
        lines += _attack(attack)
    if doc.pairs is not None:
        lines += _pairs(doc.pairs)
    return "\n".join(lines).rstrip() + "\n"
