"""The report folder: files, tables, CSV, grouping, escaping and errors (no browser needed)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from _report_data import EVIL, load_json

from geomrobust.cli import main
from geomrobust.reports import (
    SUMMARY_COLUMNS,
    ReportError,
    _fig_matrices,
    build_report,
    group_results,
    load_inputs,
)
from geomrobust.reports._document import versus_text
from geomrobust.reports._inputs import EvalEntry, Group
from geomrobust.reports._markdown import md_escape
from geomrobust.reports._stats import holm_reject
from geomrobust.reports._tables import model_table
from geomrobust.robustness import compare_results, load_result
from geomrobust.robustness._results import (
    DataRecord,
    EvalResult,
    ModelRecord,
    Predictions,
    TransformRecord,
    summarise,
)
from geomrobust.transforms import make_sweep


def test_writes_every_file_and_embeds_every_figure(full_report):
    names = sorted(p.name for p in full_report.folder.iterdir())
    assert names == ["figures", "index.html", "report.md", "summary.csv"]
    pngs = sorted(full_report.folder.glob("figures/*.png"))
    svgs = sorted(full_report.folder.glob("figures/*.svg"))
    assert [p.stem for p in pngs] == [p.stem for p in svgs]
    assert len(pngs) == len(full_report.figures) // 2 > 10
    html = full_report.html.read_text()
    assert html.count('src="data:image/png;base64,') == len(pngs)
    # Nothing in the page may point outside it.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html
    md = full_report.markdown.read_text()
    for png in pngs:
        assert f"](figures/{png.name})" in md


def test_expected_figures_exist(full_report):
    stems = {p.stem for p in full_report.folder.glob("figures/*.png")}
    g1 = [s for s in stems if s.startswith("g1-")]
    assert {"g1-small-grid-accuracy-scale", "g1-small-grid-accuracy-angle"} <= set(g1)
    assert any(s.startswith("g1-small-grid-heatmap-m1") for s in g1)
    assert any(s.startswith("g1-small-grid-difference-m2") for s in g1)
    assert sum(s.startswith("g1-small-grid-confusion-") for s in g1) == 2
    assert sum(s.startswith("g1-small-grid-gallery-") for s in g1) == 2
    assert "g1-small-grid-per-class-drop" in g1
    # The scale sweep has no rotation or shift axis, and no grid.
    g2 = {s for s in stems if s.startswith("g2-")}
    assert "g2-scale-accuracy-scale" in g2
    assert not any("accuracy-angle" in s or "heatmap" in s for s in g2)
    assert {"pairs-recall"} <= stems
    assert any(s.startswith("pairs-confusion-") for s in stems)


def test_summary_csv_is_tidy_and_exact(full_report, results):
    rows = list(csv.DictReader(full_report.csv.open()))
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    expected = 0
    for key in ("cnn_grid", "dcn_grid", "cnn_scale", "dcn_scale"):
        data = load_json(results[key])
        expected += len(data["points"]) + 1
        mine = [r for r in rows if r["result_file"] == str(results[key])]
        assert [r["point"] for r in mine] == ["clean", *map(str, range(len(data["points"])))]
        assert float(mine[0]["accuracy"]) == data["clean"]["accuracy"]
        for r, p in zip(mine[1:], data["points"], strict=True):
            assert float(r["accuracy"]) == p["accuracy"]
            assert int(r["correct"]) == p["correct"]
            assert (float(r["scale"]), float(r["angle_deg"])) == (p["scale"], p["angle_deg"])
            assert [float(r["ci95_low"]), float(r["ci95_high"])] == p["ci95"]
    assert len(rows) == expected


def test_groups_and_labels(results):
    evals, pairs, notes = load_inputs(
        [results["cnn_grid"], results["cnn_scale"], results["dcn_grid"], results["pairs"]]
    )
    assert notes == []
    assert [e.label for e in evals] == ["mnist-cnn", "mnist-cnn", "mnist-cnn-dcnv2"]
    assert [p.label for p in pairs] == ["pair-net"]
    groups = group_results(evals)
    assert [[e.path for e in g.entries] for g in groups] == [
        [results["cnn_grid"], results["dcn_grid"]],
        [results["cnn_scale"]],
    ]
    assert groups[0].title == "Sweep 'small-grid' (9 points) on digits/test"
    assert groups[1].title == "Scale sweep (3 points) on digits/test"


def test_model_table_matches_summary_and_compare(results):
    evals, _, _ = load_inputs([results["cnn_grid"], results["dcn_grid"]])
    (group,) = group_results(evals)
    rows = model_table(group, {"mnist-cnn": 123})
    a, b = load_result(results["cnn_grid"]), load_result(results["dcn_grid"])
    assert rows[0].versus_first is None
    assert rows[0].flops == 123
    assert rows[1].flops is None
    assert (rows[1].clean, rows[1].mean, rows[1].worst) == (
        b.summary.clean_accuracy,
        b.summary.mean_accuracy,
        b.summary.worst_accuracy,
    )
    assert rows[1].all_points == b.summary.all_points_accuracy
    cmp = compare_results(b, a)
    v = rows[1].versus_first
    assert v.mean_difference == cmp.mean_accuracy_difference
    assert v.mean_ci95 == cmp.mean_difference_ci95
    assert v.clean_p == cmp.clean.mcnemar_p
    reject = holm_reject([p.mcnemar_p for p in cmp.points], 0.05)
    diffs = np.array([p.difference for p in cmp.points])
    assert v.better == int(np.sum(reject & (diffs > 0)))
    assert v.worse == int(np.sum(reject & (diffs < 0)))


def test_holm_reject_steps_down_and_stops_at_the_first_failure():
    # alpha / 3, alpha / 2, alpha: 0.0167, 0.025, 0.05
    assert holm_reject([0.01, 0.02, 0.04], 0.05).tolist() == [True, True, True]
    assert holm_reject([0.04, 0.01, 0.03], 0.05).tolist() == [False, True, False]
    assert holm_reject([0.03, 0.02, 0.01], 0.05).tolist() == [True, True, True]
    assert holm_reject([0.0078125, 0.03125, 0.03125], 0.05).tolist() == [True, False, False]
    assert holm_reject([], 0.05).tolist() == []
    # The difference heatmaps mark their cells with this very function.
    assert _fig_matrices.holm_reject is holm_reject


def _result(correct: np.ndarray) -> EvalResult:
    """A result on 20 images over the scales 0.8, 0.9, 1.1; ``correct`` is ``(3, 20)``."""
    labels = np.arange(correct.shape[1], dtype=np.int64) % 10
    pred = np.where(correct, labels, (labels + 1) % 10).astype(np.int64)
    predictions = Predictions(labels, labels.copy(), pred)
    sweep = make_sweep(scales=(0.8, 0.9, 1.1))
    clean, points, summary = summarise(sweep, predictions, num_classes=10)
    return EvalResult(
        model=ModelRecord("tiny", 1, num_classes=10),
        data=DataRecord("digits", "test", labels.shape[0], {"images_sha256": "same"}),
        sweep=sweep,
        transform=TransformRecord("bilinear", "zeros"),
        clean=clean,
        points=points,
        summary=summary,
        predictions=predictions,
    )


def test_mcnemar_counts_are_holm_corrected():
    first = np.zeros((3, 20), dtype=bool)
    first[:, 10:] = True  # images 10-19 right at every point
    other = first.copy()
    other[0, :8] = True  # 8 discordant, all for B: p = 2 / 2**8 = 0.0078
    other[1, :6] = True  # 6 discordant, all for B: p = 2 / 2**6 = 0.031
    other[2, 10:16] = False  # 6 discordant, all for A: p = 0.031
    a, b = _result(first), _result(other)
    cmp = compare_results(b, a)
    assert [p.mcnemar_p for p in cmp.points] == [2 / 2**8, 2 / 2**6, 2 / 2**6]
    # Raw p < 0.05 would count better at 2 and worse at 1; Holm over the 3 points keeps
    # only the first (0.031 > 0.05 / 2).
    assert sum(p.mcnemar_p < 0.05 and p.difference > 0 for p in cmp.points) == 2
    assert sum(p.mcnemar_p < 0.05 and p.difference < 0 for p in cmp.points) == 1
    group = Group(
        "g1-scale",
        "Scale sweep (3 points)",
        (EvalEntry("A", Path("a.json"), a), EvalEntry("B", Path("b.json"), b)),
    )
    rows = model_table(group, {})
    v = rows[1].versus_first
    assert (v.better, v.worse, v.points, v.alpha) == (1, 0, 3, 0.05)
    assert versus_text(rows[1])[1] == (
        "better at 1, worse at 0 of 3 points (Holm-corrected, α = 0.05); clean p = 1"
    )
    # At alpha = 0.1 Holm keeps all three (0.0078 <= 0.033, 0.031 <= 0.05, 0.031 <= 0.1).
    v = model_table(group, {}, alpha=0.1)[1].versus_first
    assert (v.better, v.worse) == (2, 1)


def test_report_says_the_mcnemar_column_is_holm_corrected(full_report):
    md = full_report.markdown.read_text()
    html = full_report.html.read_text()
    assert "| McNemar vs first (Holm-corrected) |" in md
    assert "finds a difference, Holm-corrected over the sweep's points." in html
    assert "finds a difference, Holm-corrected over the sweep's points." in md
    assert '<th class="name">McNemar vs first (Holm-corrected)</th>' in html
    assert md_escape("(p < 0.05)") not in md
    assert md_escape("worse at 0 of 9 points (Holm-corrected, α = 0.05); clean p =") in md
    assert "worse at 0 of 9 points (Holm-corrected, α = 0.05); clean p =" in html


def test_names_and_paths_are_escaped(evil_report):
    html = evil_report.html.read_text()
    assert EVIL not in html
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "odd &lt;b&gt;&amp;&quot;folder" in html
    assert "odd <b>" not in html
    md = evil_report.markdown.read_text()
    assert EVIL not in md
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in md


def test_md_escape():
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("<x>") == "&lt;x&gt;"
    assert md_escape("line\nbreak") == "line break"
    assert md_escape("*bold* [link](u)") == "\\*bold\\* \\[link\\]\\(u\\)"


def test_missing_predictions_are_noted_not_fatal(results, tmp_path):
    for key in ("cnn_grid", "dcn_grid"):
        shutil.copy(results[key], tmp_path / results[key].name)
    shutil.copy(
        results["cnn_grid"].with_name("cnn-grid.predictions.npz"),
        tmp_path / "cnn-grid.predictions.npz",
    )
    files = build_report(
        [tmp_path / "cnn-grid.json", tmp_path / "dcn-grid.json"], tmp_path / "out", progress=False
    )
    assert any("dcn-grid.json: no dcn-grid.predictions.npz" in n for n in files.notes)
    html = files.html.read_text()
    assert "not compared" in html
    assert "no per-image predictions" in html


def test_errors(results, tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        load_inputs([tmp_path / "missing.json"])
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_inputs([bad])
    other = tmp_path / "other.json"
    other.write_text('{"schema": "something/1"}')
    with pytest.raises(ReportError, match="has schema 'something/1'"):
        load_inputs([other])
    with pytest.raises(ReportError, match="given twice"):
        load_inputs([results["cnn_grid"], results["cnn_grid"]])
    with pytest.raises(ReportError, match="no results given"):
        load_inputs([])
    shutil.copy(results["cnn_grid"], tmp_path / "again.json")
    shutil.copy(
        results["cnn_grid"].with_name("cnn-grid.predictions.npz"),
        tmp_path / "again.predictions.npz",
    )
    evals, _, _ = load_inputs([results["cnn_grid"], tmp_path / "again.json"])
    with pytest.raises(ReportError, match="appears twice on the same sweep"):
        group_results(evals)


def test_existing_report_needs_force(results, tmp_path):
    out = tmp_path / "out"
    build_report([results["cnn_scale"]], out, progress=False)
    keep = out / "my-notes.txt"
    keep.write_text("mine")
    with pytest.raises(ReportError, match="pass force=True"):
        build_report([results["cnn_scale"]], out, progress=False)
    stale = out / "figures" / "stale.png"
    stale.write_bytes(b"x")
    build_report([results["dcn_scale"]], out, progress=False, force=True)
    assert keep.read_text() == "mine"  # not ours: left alone
    assert not stale.exists()  # ours: replaced as a whole
    assert "mnist-cnn-dcnv2" in (out / "index.html").read_text()


def test_cli(results, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", str(results["cnn_scale"]), "--out", str(out), "--no-progress"]) == 0
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    assert main(["report", str(results["cnn_scale"]), "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x")]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    args = ["report", str(results["cnn_scale"]), "--out", str(tmp_path / "y"), "--examples", "0"]
    assert main(args) == 2
    assert "examples must be in 1..32" in capsys.readouterr().err
