"""``report.md``: the same tables as the HTML page, with figures linked from ``figures/``."""

from __future__ import annotations

from geomrobust.reports._document import (
    FigureRecord,
    GroupSection,
    PairSection,
    ReportDocument,
    fmt_count,
    fmt_flops,
    fmt_pct,
    versus_text,
)

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
    for fig in section.figures:
        lines += _figure(fig)
    return lines


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
    if doc.pairs is not None:
        lines += _pairs(doc.pairs)
    return "\n".join(lines).rstrip() + "\n"
