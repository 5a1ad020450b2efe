"""Several training seeds per model: small real runs on digits (``geomrobust train`` with
seeds 0 and 1 for ``mnist-cnn`` and its DCNv2 twin, 3 epochs), evaluated on a 3-point scale
sweep, then ``geomrobust compare`` and ``report`` of the four results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from geomrobust.cli import main as run_cli
from geomrobust.robustness import (
    IncompatibleResultsError,
    compare_results,
    compare_seeds,
    load_result,
    seed_groups,
    t_interval,
)

MODELS = ("mnist-cnn", "mnist-cnn-dcnv2")
SEEDS = (0, 1)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err
    assert err[-1].startswith("error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, int], object]:
    folder = tmp_path_factory.mktemp("seeds")
    out = {}
    for model in MODELS:
        for seed in SEEDS:
            ckpt = folder / f"{model}-s{seed}.safetensors"
            train = ["train", "--model", model, "--dataset", "digits", "--epochs", "3"]
            train += [
                "--batch-size",
                "32",
                "--seed",
                str(seed),
                "--out",
                str(ckpt),
                "--no-progress",
                "--threads",
                "1",
            ]
            assert run_cli(train) == 0
            result = folder / f"{model}-s{seed}.json"
            evaluate = ["eval", "--checkpoint", str(ckpt), "--dataset", "digits"]
            evaluate += ["--scales", "0.8,1,1.2", "--out", str(result), "--no-progress"]
            assert run_cli(evaluate) == 0
            out[(model, seed)] = result
    return out


def test_results_record_seed_and_recipe(runs):
    records = {key: load_result(path).model for key, path in runs.items()}
    for (_, seed), record in records.items():
        assert record.training_seed == seed
        assert len(record.training_recipe) == 64
    # Seeds of one model share the recipe; the twin's differs (another model name).
    assert records[("mnist-cnn", 0)].training_recipe == records[("mnist-cnn", 1)].training_recipe
    assert records[("mnist-cnn", 0)].training_recipe != (
        records[("mnist-cnn-dcnv2", 0)].training_recipe
    )
    results = [load_result(runs[key]) for key in sorted(runs)]
    assert seed_groups(results) == [[0, 1], [2, 3]]


def test_t_interval_known_values():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.302652... / 1.732...
    lo, hi = t_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half), abs=1e-12)
    assert half == pytest.approx(2.4841377, abs=1e-6)
    assert t_interval([0.5]) is None


def test_compare_seeds_pairs_by_seed(runs):
    a = [load_result(runs[("mnist-cnn", s)]) for s in SEEDS]
    b = [load_result(runs[("mnist-cnn-dcnv2", s)]) for s in reversed(SEEDS)]  # any order
    cmp = compare_seeds(a, b, resamples=50)
    assert cmp.seeds == SEEDS
    assert cmp.model_a.startswith("mnist-cnn ")
    assert cmp.model_b.startswith("mnist-cnn-dcnv2 ")
    diffs = []
    for s, ra, per in zip(SEEDS, a, cmp.per_seed, strict=True):
        rb = load_result(runs[("mnist-cnn-dcnv2", s)])
        direct = compare_results(ra, rb, resamples=50)
        assert per.to_dict() == direct.to_dict()
        diffs.append(ra.summary.mean_accuracy - rb.summary.mean_accuracy)
    assert cmp.mean.difference == pytest.approx(np.mean(diffs), abs=1e-15)
    assert cmp.mean.ci95 == pytest.approx(t_interval(diffs), abs=1e-15)
    assert cmp.mean.a == tuple(r.summary.mean_accuracy for r in a)
    assert len(cmp.points) == 3


def test_compare_seeds_refuses_unpaired_or_mixed(runs):
    a = [load_result(runs[("mnist-cnn", s)]) for s in SEEDS]
    b = [load_result(runs[("mnist-cnn-dcnv2", 0)])]
    with pytest.raises(
        IncompatibleResultsError, match=r"same training seeds.*only A has seeds \[1\]"
    ):
        compare_seeds(a, b)
    mixed = [a[0], load_result(runs[("mnist-cnn-dcnv2", 1)])]
    with pytest.raises(IncompatibleResultsError, match="are of 2 models"):
        compare_seeds(mixed, a)
    with pytest.raises(IncompatibleResultsError, match="do not record distinct training seeds"):
        seed_groups([a[0], a[0]])


def test_cli_compare_seeds(runs, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    files = [str(runs[(m, s)]) for m in MODELS for s in SEEDS]
    assert run_cli(["compare", *files, "--resamples", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "across seeds (run-to-run variation)" in printed
    assert "per seed pair, on the same images (test-set sampling variation)" in printed
    saved = json.loads(out.read_text())
    assert saved["schema"] == "geomrobust.compare-seeds/1"
    assert saved["seeds"] == [0, 1]
    n = load_result(runs[("mnist-cnn", 0)]).data.n
    assert saved["n"] == n
    assert f"seeds: 0, 1; n = {n} images per result" in printed
    lo, hi = saved["mean"]["ci95"]
    assert lo <= saved["mean"]["difference"] <= hi
    assert saved["mean"]["difference"] != 0  # the twin differs from the regular model
    assert f"{saved['mean']['difference']:+.4f}" in printed


def test_cli_compare_seeds_errors(runs, capsys):
    files = [str(runs[("mnist-cnn", s)]) for s in SEEDS]
    assert run_cli(["compare", *files, str(runs[("mnist-cnn-dcnv2", 0)])]) == 2
    assert "only A has seeds [1]" in _error(capsys)
    assert run_cli(["compare", str(runs[("mnist-cnn", 0)])]) == 2
    assert "compare needs two results" in _error(capsys)


def test_report_of_seeds(runs, tmp_path):
    files = [str(runs[(m, s)]) for m in MODELS for s in SEEDS]
    out = tmp_path / "report"
    assert run_cli(["report", *files, "--out", str(out), "--no-progress"]) == 0
    md = (out / "report.md").read_text()
    assert "### Across training seeds" in md
    rows = [line for line in md.splitlines() if line.startswith("| mnist-cnn")]
    seeds_rows = [r for r in rows if "| 0, 1 |" in r]
    assert len(seeds_rows) == 2, rows
    a = [load_result(runs[("mnist-cnn", s)]).summary for s in SEEDS]
    b = [load_result(runs[("mnist-cnn-dcnv2", s)]).summary for s in SEEDS]
    mean_a = 100 * np.mean([s.clean_accuracy for s in a])
    assert f"{mean_a:.1f} ± " in seeds_rows[0]
    d = [x.mean_accuracy - y.mean_accuracy for x, y in zip(b, a, strict=True)]
    lo, hi = t_interval(d)
    text = f"{100 * np.mean(d):+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    assert text.replace("+", "\\+").replace("[", "\\[").replace("]", "\\]") in seeds_rows[1]
    html = (out / "index.html").read_text()
    assert "<h3>Across training seeds</h3>" in html
    assert f"<td>{text}</td>" in html
