"""Robustness reports: side-by-side tables, seaborn figures, HTML and Markdown.

:func:`build_report` turns result files of ``geomrobust eval`` and ``geomrobust eval-pairs``
into a folder with ``index.html`` (self-contained), ``report.md``, ``summary.csv`` (one row
per model × point) and ``figures/`` (PNG and SVG).
"""

from geomrobust.reports._build import REPORT_FILES, ReportFiles, build_report
from geomrobust.reports._inputs import (
    EvalEntry,
    Group,
    PairEntry,
    ReportError,
    group_results,
    load_inputs,
)
from geomrobust.reports._tables import SUMMARY_COLUMNS, model_table, summary_rows

__all__ = [
    "REPORT_FILES",
    "SUMMARY_COLUMNS",
    "EvalEntry",
    "Group",
    "PairEntry",
    "ReportError",
    "ReportFiles",
    "build_report",
    "group_results",
    "load_inputs",
    "model_table",
    "summary_rows",
]
