"""``geomrobust demo`` end to end, shrunk (1 epoch, 40 test images) so it runs in seconds."""

from __future__ import annotations

import csv
import json

import pytest

from geomrobust.cli import main

QUICK = [
    "--epochs", "1", "--pair-epochs", "1", "--train-pairs", "128", "--pairs", "70",
    "--test-images", "40", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), *QUICK]) == 0
    return out


def test_demo_writes_models_results_and_report(demo, capsys):
    ckpts = sorted(p.name for p in (demo / "checkpoints").glob("*.safetensors"))
    assert ckpts == ["mnist-cnn-dcnv2.safetensors", "mnist-cnn.safetensors", "pair-net.safetensors"]
    results = sorted(p.name for p in (demo / "results").glob("*.json"))
    assert results == [
        "mnist-cnn-dcnv2-rotation.json",
        "mnist-cnn-dcnv2-scale-rotation.json",
        "mnist-cnn-dcnv2-scale.json",
        "mnist-cnn-rotation.json",
        "mnist-cnn-scale-rotation.json",
        "mnist-cnn-scale.json",
        "pairs.json",
    ]
    grid = json.loads((demo / "results" / "mnist-cnn-dcnv2-scale-rotation.json").read_text())
    assert len(grid["points"]) == 275
    assert grid["data"]["n"] == 40
    pairs = json.loads((demo / "results" / "pairs.json").read_text())
    assert pairs["n"] == 70
    assert len(pairs["class_names"]) == 7
    for name in ("index.html", "report.md", "summary.csv"):
        assert (demo / "report" / name).is_file()
    rows = list(csv.DictReader((demo / "report" / "summary.csv").open()))
    assert len(rows) == 2 * (11 + 1) + 2 * (25 + 1) + 2 * (275 + 1)
    assert {r["model"] for r in rows} == {"mnist-cnn", "mnist-cnn-dcnv2"}
    figures = {p.stem for p in (demo / "report" / "figures").glob("*.png")}
    assert any("gallery" in f for f in figures)  # the subset's images were found
    assert any("difference" in f for f in figures)
    assert "pairs-recall" in figures
    for name in ("scale", "rotation", "translation"):
        assert (demo / f"transforms_{name}.png").is_file()


def test_demo_refuses_to_overwrite(demo, capsys):
    assert main(["demo", "--out", str(demo), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "already holds" in err
    assert "--force" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--epochs", "0", "--epochs must be >= 1"),
        ("--test-images", "3", "--test-images must be >= 10"),
        ("--pairs", "2", "--pairs must be >= 7"),
    ],
)
def test_demo_bad_arguments(tmp_path, capsys, flag, value, message):
    assert main(["demo", "--out", str(tmp_path / "x"), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
