"""Robustness reports: side-by-side tables, seaborn figures, HTML and Markdown.

:func:`build_report` turns result files of ``geomrobust eval``, ``geomrobust attack`` and
``geomrobust eval-pairs`` into a folder with ``index.html`` (self-contained), ``report.md``,
``summary.csv`` (one row per model × point of the eval results) and ``figures/`` (PNG and
SVG).
"""

from geomrobust.reports._attack import AttackGroup, attack_table, group_attacks
from geomrobust.reports._build import REPORT_FILES, ReportFiles, build_report
from geomrobust.reports._flips import FlipRow, FlipTable, flip_table
from geomrobust.reports._inputs import (
    AttackEntry,
    EvalEntry,
    Group,
    PairEntry,
    ReportError,
    ReportInputs,
    group_results,
    load_inputs,
    read_inputs,
)
from geomrobust.reports._tables import SUMMARY_COLUMNS, model_table, summary_rows

__all__ = [
    "REPORT_FILES",
    "SUMMARY_COLUMNS",
    "AttackEntry",
    "AttackGroup",
    "EvalEntry",
    "FlipRow",
    "FlipTable",
    "Group",
    "PairEntry",
    "ReportError",
    "ReportFiles",
    "ReportInputs",
    "attack_table",
    "build_report",
    "flip_table",
    "group_attacks",
    "group_results",
    "load_inputs",
    "model_table",
    "read_inputs",
    "summary_rows",
]
