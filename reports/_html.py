"""``index.html``: one self-contained page (figures inlined as PNG data URIs, no scripts).

Every name, path and note is escaped with :func:`html.escape`. The page declares a Content
Security Policy that allows only inline styles and ``data:`` images, so even a crafted input
could not make it load anything or run a script.
"""

from __future__ import annotations

import base64
from html import escape

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

__all__ = ["render_html"]

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430;
       margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin-top: 40px; border-bottom: 2px solid #e3e6ea; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 24px 0 6px; }
.meta, figcaption, .note { color: #556070; font-size: 13px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13.5px; width: 100%; }
th, td { padding: 5px 9px; border-bottom: 1px solid #e3e6ea; text-align: right;
         vertical-align: top; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; }
td.name, th.name { text-align: left; white-space: nowrap; }
td.wide { text-align: left; white-space: normal; min-width: 16em; }
tr.reference td { background: #fafbfc; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          margin-right: 6px; vertical-align: baseline; }
.sig { font-weight: 600; }
figure { margin: 18px 0 26px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eceef1; }
nav ul { columns: 2; padding-left: 18px; }
code { font-size: 12.5px; background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
"""


def _png_uri(fig: FigureRecord) -> str:
    return "data:image/png;base64," + base64.b64encode(fig.png.read_bytes()).decode("ascii")


def _figure(fig: FigureRecord) -> str:
    return (
        "<figure>"
        f'<img src="{_png_uri(fig)}" alt="{escape(fig.title)}">'
        f"<figcaption><b>{escape(fig.title)}.</b> {escape(fig.caption)} "
        f"(<code>figures/{escape(fig.svg.name)}</code>)</figcaption>"
        "</figure>"
    )


def _swatch(colour: str | None) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>' if colour else ""


def _group(section: GroupSection, colours: dict[str, str]) -> str:
    g = section.group
    r = g.first
    t = r.transform
    meta = (
        f"{fmt_count(r.data.n)} images of {escape(r.data.dataset)}/{escape(r.data.split)}; "
        f"{len(r.sweep)} points; {escape(t.interpolation)} interpolation, "
        f"{'zero' if t.fill is None else escape(str(t.fill_spec or list(t.fill)))} padding. "
        f"Δ mean is this model minus <b>{escape(g.entries[0].label)}</b> with a paired "
        "bootstrap 95 % interval (* when it excludes 0); McNemar counts the points where the "
        "exact McNemar test on the same images finds a difference, Holm-corrected over the "
        "sweep's points."
    )
    head = (
        '<tr><th class="name">model</th><th>params</th><th>FLOPs</th><th>clean</th>'
        "<th>mean</th><th>worst</th><th>all points</th><th>consistency</th>"
        '<th>Δ mean vs first</th><th class="name">McNemar vs first (Holm-corrected)</th></tr>'
    )
    body = []
    for row in section.rows:
        mean_diff, mcnemar = versus_text(row)
        cls = ' class="reference"' if row.versus_first is None else ""
        sig = row.versus_first is not None and row.versus_first.significant
        mean_cell = f'<span class="sig">{escape(mean_diff)}</span>' if sig else escape(mean_diff)
        if row.why_not_compared:
            mcnemar = row.why_not_compared
        body.append(
            f"<tr{cls}>"
            f'<td class="name">{_swatch(colours.get(row.label))}{escape(row.label)}</td>'
            f"<td>{fmt_count(row.params)}</td><td>{fmt_flops(row.flops)}</td>"
            f"<td>{fmt_pct(row.clean)}</td><td>{fmt_pct(row.mean)}</td>"
            f"<td>{fmt_pct(row.worst)}<br><span class=meta>{escape(row.worst_point)}</span></td>"
            f"<td>{fmt_pct(row.all_points)}</td><td>{fmt_pct(row.consistency)}</td>"
            f"<td>{mean_cell}</td><td class=wide>{escape(mcnemar)}</td></tr>"
        )
    figures = "".join(_figure(f) for f in section.figures)
    seeds = _seeds(section.seeds, colours) if section.seeds else ""
    return (
        f'<section id="{escape(g.slug)}"><h2>{escape(g.title)}</h2>'
        f'<p class="meta">{meta}</p>'
        f"<table>{head}{''.join(body)}</table>{seeds}{figures}</section>"
    )


def _seeds(rows: list[SeedRow], colours: dict[str, str]) -> str:
    head = (
        '<tr><th class="name">model</th><th>seeds</th><th>clean</th><th>mean</th>'
        "<th>Δ clean vs first</th><th>Δ mean vs first</th></tr>"
    )
    body = []
    for i, row in enumerate(rows):
        cls = ' class="reference"' if i == 0 else ""
        body.append(
            f'<tr{cls}><td class="name">{_swatch(colours.get(row.label))}{escape(row.label)}'
            f"</td><td>{escape(', '.join(str(s) for s in row.seeds))}</td>"
            f"<td>{seed_text(row.own_clean)}</td><td>{seed_text(row.own_mean)}</td>"
            f"<td>{escape(difference_text(row.clean, row.why_not_paired))}</td>"
            f"<td>{escape(difference_text(row.mean, row.why_not_paired))}</td></tr>"
        )
    return (
        f'<h3>Across training seeds</h3><p class="meta">{escape(SEEDS_INTRO)}</p>'
        f"<table>{head}{''.join(body)}</table>"
    )


def _pairs(section: PairSection, colours: dict[str, str]) -> str:
    names = section.class_names
    head = (
        '<tr><th class="name">model</th><th>params</th><th>pairs</th><th>accuracy</th>'
        + "".join(f"<th>{escape(n)}</th>" for n in names)
        + "</tr>"
    )
    body = []
    for row in section.rows:
        lo, hi = row["ci95"]
        cells = "".join(f"<td>{fmt_pct(row['recall'].get(n))}</td>" for n in names)
        body.append(
            f'<tr><td class="name">{_swatch(colours.get(row["model"]))}{escape(row["model"])}'
            f"</td><td>{fmt_count(row['params'])}</td><td>{fmt_count(row['pairs'])}</td>"
            f"<td>{fmt_pct(row['accuracy'])}<br><span class=meta>[{fmt_pct(lo)}, "
            f"{fmt_pct(hi)}]</span></td>{cells}</tr>"
        )
    figures = "".join(_figure(f) for f in section.figures)
    return (
        '<section id="pairs"><h2>Transformation-pair classifiers</h2>'
        '<p class="meta">Accuracy with its 95 % Wilson interval, and recall of each of the '
        "transform classes.</p>"
        f"<table>{head}{''.join(body)}</table>{figures}</section>"
    )


def _flips(table: FlipTable, colours: dict[str, str]) -> str:
    head = (
        '<tr><th class="name">model</th>'
        + "".join(f"<th>{escape(g.title)}</th>" for g in table.sequences)
        + f"<th>{escape(table.column)}</th></tr>"
    )
    body = []
    for row in table.rows:
        cls = ' class="reference"' if row.label == table.baseline else ""
        cells = "".join(f"<td>{flip_text(table, v)}</td>" for v in row.values)
        body.append(
            f'<tr{cls}><td class="name">{_swatch(colours.get(row.label))}{escape(row.label)}'
            f'</td>{cells}<td class="sig">{flip_text(table, row.mean)}</td></tr>'
        )
    return (
        '<section id="flips"><h2>Flips along sequences</h2>'
        f'<p class="meta">{escape(flip_intro(table))}</p>'
        f"<table>{head}{''.join(body)}</table></section>"
    )


def _attack(section: AttackSection, colours: dict[str, str]) -> str:
    g = section.group
    r = g.first
    head = (
        '<tr><th class="name">model</th><th>params</th><th>n</th>'
        + "".join(f"<th>{escape(name)}</th>" for name in MODE_NAMES.values())
        + "<th>pair consistency</th></tr>"
    )
    body = []
    for row in section.rows:
        cells = "".join(
            f"<td>{fmt_pct(row['accuracy'][m])}<br><span class=meta>"
            f"[{fmt_pct(row['ci95'][m][0])}, {fmt_pct(row['ci95'][m][1])}]</span></td>"
            for m in MODE_NAMES
        )
        body.append(
            f'<tr><td class="name">{_swatch(colours.get(row["model"]))}{escape(row["model"])}'
            f"</td><td>{fmt_count(row['params'])}</td><td>{fmt_count(row['n'])}</td>{cells}"
            f"<td>{fmt_pct(row['pair_consistency'])}</td></tr>"
        )
    meta = (
        f"{fmt_count(r.data.n)} images of {escape(r.data.dataset)}/{escape(r.data.split)}. "
        "Accuracy on the clean images, under one random transform in the box, under the "
        "worst of k random transforms (highest loss) and under every point of the grid (an "
        "image counts as correct only if no grid point fools the model), each with its 95 % "
        "Wilson interval; pair consistency is the share of images whose predictions agree "
        "under two independent random transforms."
    )
    figures = "".join(_figure(f) for f in section.figures)
    return (
        f'<section id="{escape(g.slug)}"><h2>{escape(g.title)}</h2>'
        f'<p class="meta">{meta}</p>'
        f"<table>{head}{''.join(body)}</table>{figures}</section>"
    )


def render_html(doc: ReportDocument, colours: dict[str, str]) -> str:
    """The page as text. ``colours`` maps model labels to CSS colours (``#rrggbb``)."""
    toc = [
        f'<li><a href="#{escape(s.group.slug)}">{escape(s.group.title)}</a></li>'
        for s in doc.groups
    ]
    if doc.flips is not None:
        toc.append('<li><a href="#flips">Flips along sequences</a></li>')
    toc += [
        f'<li><a href="#{escape(s.group.slug)}">{escape(s.group.title)}</a></li>'
        for s in doc.attacks
    ]
    if doc.pairs is not None:
        toc.append('<li><a href="#pairs">Transformation-pair classifiers</a></li>')
    inputs = "".join(
        f'<tr><td class="name">{_swatch(colours.get(label))}{escape(label)}</td>'
        f'<td class="wide"><code>{escape(path)}</code></td><td class="name">{escape(schema)}</td>'
        "</tr>"
        for label, path, schema in doc.inputs
    )
    notes = "".join(f'<li class="note">{escape(n)}</li>' for n in doc.notes)
    versions = ", ".join(f"{escape(k)} {escape(v)}" for k, v in doc.versions.items())
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(doc.title)}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{escape(doc.title)}</h1>",
        f'<p class="meta">Made by {versions}. Accuracies are on the images as warped by the '
        "suite's convention (positive angles counter-clockwise, shifts in pixels after scale "
        "and rotation); bands and intervals are 95 % Wilson intervals.</p>",
        f"<nav><ul>{''.join(toc)}</ul></nav>",
        '<h2 id="inputs">Inputs</h2><table><tr><th class="name">model</th>'
        '<th class="name">result file</th><th class="name">schema</th></tr>'
        f"{inputs}</table>",
    ]
    if notes:
        parts.append(f"<h3>Left out</h3><ul>{notes}</ul>")
    parts.extend(_group(s, colours) for s in doc.groups)
    if doc.flips is not None:
        parts.append(_flips(doc.flips, colours))
    parts.extend(_attack(s, colours) for s in doc.attacks)
    if doc.pairs is not None:
        parts.append(_pairs(doc.pairs, colours))
    parts.append("</main></body></html>\n")
    return "\n".join(parts)
