"""``geomrobust report``: a side-by-side robustness report from result files."""

from __future__ import annotations

import argparse
from pathlib import Path

from geomrobust.cli._errors import as_flags
from geomrobust.cli._options import add_force, add_out, add_progress

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML/Markdown report comparing eval and attack results side by side",
        description=(
            "Compare models from their result files (geomrobust eval, attack and eval-pairs). "
            "Results on the same data, sweep and transform convention are shown side by side: "
            "a table (parameters, FLOPs, clean, mean, worst and all-points accuracy, "
            "consistency, and the paired comparison with the first model given) and seaborn "
            "figures (accuracy "
            "against scale, angle and shift with 95 % bands, scale x rotation heatmaps and "
            "their differences, confusion matrices at the clean and worst points, per-class "
            "drop, a gallery of examples). Eval results on ordered sequences (one varying "
            "parameter) add a flip table: each model's flip probability per sequence and its "
            "mean, or with --baseline the flip rate relative to that model and its mean, mFR. "
            "Attack results on the same data and attack settings form a section of their own: "
            "accuracy clean, random, worst-of-k and grid with 95 % intervals, pair consistency "
            "and a figure of the modes. Writes OUT/index.html (self-contained), "
            "OUT/report.md, OUT/summary.csv (one row per model x point) and OUT/figures/ "
            "(PNG and SVG)."
        ),
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT.json")
    add_out(p, metavar="DIR", help="report folder (created if missing)")
    p.add_argument(
        "--data-root",
        type=Path,
        help="folder holding the evaluated datasets, for the example gallery (digits needs "
        "none); without it, galleries of data that cannot be found are left out and said so",
    )
    p.add_argument(
        "--examples", type=int, default=6, help="images per example gallery (1..32, default 6)"
    )
    p.add_argument("--title", default="Geometric robustness report", help="the report's title")
    p.add_argument(
        "--baseline",
        metavar="NAME",
        help="a model's label as the report shows it: the flip table's mean column becomes "
        "mFR, each model's mean over sequences of FP / FP of NAME on the same sequence and "
        "data (default: each model's mean flip probability, 'mean FP')",
    )
    add_force(p, what="an earlier report in --out")
    add_progress(p)
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from geomrobust.reports import build_report

    files = build_report(
        args.results,
        args.out,
        data_root=args.data_root,
        examples=args.examples,
        title=args.title,
        force=args.force,
        progress=args.progress,
        baseline=args.baseline,
    )
    for note in files.notes:
        print(f"note: {as_flags(note)}")
    print(f"wrote {files.html}")
    print(f"wrote {files.markdown}, {files.csv} and {len(files.figures)} figure files")
    return 0
