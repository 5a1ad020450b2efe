"""Attack results in a report (table, figure, grouping) and the flip table (mean FP, or mFR
relative to ``--baseline``), on real results of the reference MNIST CNN and its DCNv2 twin."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer

from geomrobust.cli import main
from geomrobust.reports import (
    AttackEntry,
    ReportError,
    attack_table,
    build_report,
    flip_table,
    group_attacks,
    group_results,
    load_inputs,
    read_inputs,
)
from geomrobust.reports._document import fmt_pct
from geomrobust.reports._figures import attack_accuracy, model_colours
from geomrobust.robustness import (
    EvalOptions,
    attack,
    attack_preset,
    load_attack_result,
    load_for_eval,
    load_result,
    write_attack_result,
)

MODES = ("clean", "random", "worst_of_k", "grid")
CHECKPOINTS = {"cnn": "ref:mnist-cnn", "dcn": "ref:mnist-cnn-dcnv2"}
LABELS = {"cnn": "mnist-cnn", "dcn": "mnist-cnn-dcnv2"}


@pytest.fixture(scope="module")
def attacks(tmp_path_factory, small_digits) -> dict[str, Path]:
    """Attack results (engstrom-mnist, 5 × 3 × 3 grid) of both models on 60 digits."""
    folder = tmp_path_factory.mktemp("attacks")
    out = {}
    for key, ckpt in CHECKPOINTS.items():
        loaded = load_for_eval(ckpt, data=small_digits)
        result = attack(
            loaded.model,
            small_digits,
            attack_preset("engstrom-mnist", grid=(5, 3, 3)),
            options=EvalOptions(mean=loaded.record.mean, std=loaded.record.std),
            record=loaded.record,
        )
        out[key] = write_attack_result(result, folder / f"attack-{key}.json")
    return out


@pytest.fixture(scope="module")
def rotations(tmp_path_factory) -> dict[str, Path]:
    """Eval results of both models on a 7-point rotation sequence (-30..30 degrees)."""
    folder = tmp_path_factory.mktemp("rotations")
    out = {}
    for key, ckpt in CHECKPOINTS.items():
        out[key] = folder / f"rot-{key}.json"
        args = ["eval", "--checkpoint", ckpt, "--dataset", "digits", "--angles=-30:30:10"]
        args += ["--max-images", "60", "--out", str(out[key]), "--no-progress"]
        assert main(args) == 0
    return out


def _md_rows(md: str, section: str) -> list[list[str]]:
    """The table rows (cells stripped, header first, no ``|---|`` line) of the Markdown
    section headed ``section``."""
    text = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]


def test_attack_section_has_the_table_and_the_figure(attacks, tmp_path):
    files = build_report([attacks["cnn"], attacks["dcn"]], tmp_path / "out", progress=False)
    stems = sorted(p.name for p in (files.folder / "figures").iterdir())
    assert stems == ["a1-engstrom-mnist-accuracy.png", "a1-engstrom-mnist-accuracy.svg"]
    md = files.markdown.read_text()
    title = "Spatial attack engstrom-mnist \\(±30°, ±3 px; k = 10; grid 5 × 3 × 3; seed 0\\)"
    rows = _md_rows(md, f"{title} on digits/test")
    assert rows[0] == [
        "model",
        "params",
        "n",
        "clean [95 % CI]",
        "random [95 % CI]",
        "worst-of-k [95 % CI]",
        "grid [95 % CI]",
        "pair consistency",
    ]
    for row, key in zip(rows[1:], ("cnn", "dcn"), strict=True):
        s = load_attack_result(attacks[key]).summary
        cells = [
            f"{fmt_pct(s[f'{m}_accuracy'])} [{fmt_pct(s[f'{m}_accuracy_ci95'][0])}, "
            f"{fmt_pct(s[f'{m}_accuracy_ci95'][1])}]"
            for m in MODES
        ]
        params = f"{load_attack_result(attacks[key]).model.params:,}"
        assert row == [LABELS[key], params, "60", *cells, fmt_pct(s["pair_consistency"])]
    assert "](figures/a1-engstrom-mnist-accuracy.png)" in md
    html = files.html.read_text()
    assert '<section id="a1-engstrom-mnist">' in html
    assert html.count('src="data:image/png;base64,') == 1
    assert "<th>worst-of-k</th>" in html
    # No eval result: no flip table, and summary.csv has its header only.
    assert "Flips along sequences" not in md
    assert files.csv.read_text().count("\n") == 1


def test_attack_table_and_figure_show_the_summaries(attacks):
    inputs = read_inputs([attacks["cnn"], attacks["dcn"]])
    assert inputs.evals == inputs.pairs == ()
    (group,) = group_attacks(inputs.attacks)
    rows = attack_table(group)
    labelled = [(e.label, e.result) for e in group.entries]
    assert [r["model"] for r in rows] == [LABELS["cnn"], LABELS["dcn"]]
    for row, (_, result) in zip(rows, labelled, strict=True):
        s = result.summary
        assert row["n"] == 60
        assert row["accuracy"] == {m: s[f"{m}_accuracy"] for m in MODES}
        assert row["ci95"] == {m: tuple(s[f"{m}_accuracy_ci95"]) for m in MODES}
        assert row["pair_consistency"] == s["pair_consistency"]
    colours = model_colours([label for label, _ in labelled])
    fig = attack_accuracy(labelled, colours=colours)
    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == [label for label, _ in labelled]
    for container, (label, result) in zip(bars, labelled, strict=True):
        s = result.summary
        heights = [p.get_height() for p in container.patches]
        assert heights == pytest.approx([100 * s[f"{m}_accuracy"] for m in MODES])
        assert {to_hex(p.get_facecolor()) for p in container.patches} == {to_hex(colours[label])}
        segments = container.errorbar.lines[2][0].get_segments()
        ends = [sorted((seg[0][1], seg[1][1])) for seg in segments]
        expected = [[100 * v for v in s[f"{m}_accuracy_ci95"]] for m in MODES]
        assert np.allclose(ends, expected)


def test_attack_groups_split_by_settings_and_refuse_a_model_twice(attacks, tmp_path):
    inputs = read_inputs([attacks["cnn"], attacks["dcn"]])
    cnn, dcn = inputs.attacks
    other = replace(dcn.result, attack={**dcn.result.attack, "seed": 1})
    groups = group_attacks([cnn, AttackEntry(dcn.label, dcn.path, other)])
    assert [g.slug for g in groups] == ["a1-engstrom-mnist", "a2-engstrom-mnist"]
    assert "seed 1" in groups[1].title
    again = AttackEntry(cnn.label, tmp_path / "again.json", cnn.result)
    with pytest.raises(ReportError, match=r"'mnist-cnn' appears twice in the same attack"):
        group_attacks([cnn, dcn, again])
    with pytest.raises(ReportError, match=r"attack results; load_inputs returns eval and pair"):
        load_inputs([attacks["cnn"]])


def test_baseline_mfr_is_one_for_the_baseline(attacks, rotations, tmp_path):
    paths = [rotations["cnn"], rotations["dcn"], attacks["cnn"], attacks["dcn"]]
    files = build_report(paths, tmp_path / "out", progress=False, baseline=LABELS["cnn"])
    fp = {k: load_result(p).summary.flip_probability for k, p in rotations.items()}
    assert all(v is not None and v > 0 for v in fp.values())
    md = files.markdown.read_text()
    rows = _md_rows(md, "Flips along sequences")
    assert rows[0] == ["model", "Sweep 'custom' \\(7 points\\) on digits/test", "mFR"]
    assert rows[1] == [LABELS["cnn"], "1.000", "1.000"]
    ratio = f"{fp['dcn'] / fp['cnn']:.3f}"
    assert rows[2] == [LABELS["dcn"], ratio, ratio]
    # The numbers behind the table: FR = FP / FP of the baseline on the same sequence.
    inputs = read_inputs(paths)
    table = flip_table(group_results(inputs.evals), baseline=LABELS["cnn"])
    assert table.column == "mFR"
    base, other = table.rows
    assert (base.label, base.values, base.mean, base.sequences) == (LABELS["cnn"], (1.0,), 1.0, 1)
    assert other.mean == fp["dcn"] / fp["cnn"]
    # Attack and eval results of a model share its label and colour.
    assert [e.label for e in inputs.attacks] == [e.label for e in inputs.evals]
    html = files.html.read_text()
    for label in LABELS.values():
        swatches = {
            part.split('"></span>')[0]
            for part in html.split('<span class="swatch" style="background:')[1:]
            if part.split("</span>", 1)[1].startswith(label + "<")
        }
        assert len(swatches) == 1, (label, swatches)
    assert '<th class="name">model</th><th>Sweep' in html
    assert "<th>mFR</th>" in html


def test_without_baseline_the_column_is_the_mean_fp(rotations):
    evals, _, _ = load_inputs([rotations["cnn"], rotations["dcn"]])
    table = flip_table(group_results(evals))
    assert table.baseline is None
    assert table.column == "mean FP"
    for row, key in zip(table.rows, ("cnn", "dcn"), strict=True):
        fp = load_result(rotations[key]).summary.flip_probability
        assert (row.label, row.values, row.mean) == (LABELS[key], (fp,), fp)


def test_report_without_baseline_shows_mean_fp(full_report):
    md = full_report.markdown.read_text()
    rows = _md_rows(md, "Flips along sequences")
    assert rows[0][-1] == "mean FP"
    assert [r[0] for r in rows[1:]] == ["mnist-cnn", "mnist-cnn-dcnv2"]
    assert all(r[-1].endswith(" %") for r in rows[1:])


def test_unknown_baseline_lists_the_labels(rotations, results, tmp_path, capsys):
    paths = [rotations["cnn"], rotations["dcn"]]
    out = tmp_path / "out"
    with pytest.raises(
        ReportError,
        match=r"unknown baseline 'nope'; the models of this report's eval results are "
        r"labelled 'mnist-cnn', 'mnist-cnn-dcnv2'",
    ):
        build_report(paths, out, progress=False, baseline="nope")
    assert not out.exists()
    with pytest.raises(ReportError, match=r"Did you mean 'mnist-cnn-dcnv2'\?"):
        build_report(paths, out, progress=False, baseline="mnist-cnn-dcnv")
    args = ["report", *map(str, paths), "--out", str(out), "--baseline", "nope", "--no-progress"]
    assert main(args) == 2
    assert "error: unknown baseline 'nope'" in capsys.readouterr().err
    # A known model without a sequence result has no flip probability to divide by.
    with pytest.raises(ReportError, match=r"baseline 'mnist-cnn' has no eval result on an ordered"):
        build_report([results["cnn_grid"]], out, progress=False, baseline="mnist-cnn")
