"""``geomrobust make-dataset``: byte-identical output, manifest verification, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from geomrobust.cli import main


def test_scaled_mnist_on_digits_twice_is_byte_identical_and_verifies(tmp_path, capsys):
    for out in ("a", "b"):
        argv = ["make-dataset", "scaled-mnist", "--dataset", "digits", "--out", str(tmp_path / out)]
        assert main(argv) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [
        "images.npy",
        "labels.npy",
        "manifest.json",
        "params.npy",
        "point_index.npy",
        "source_index.npy",
    ]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["n_points"] == 11
    assert manifest["n_images"] == 11 * 359
    assert manifest["source"]["dataset"] == "digits"
    assert manifest["command"].startswith("geomrobust make-dataset scaled-mnist --dataset digits")
    capsys.readouterr()
    assert main(["make-dataset", "scaled-mnist", "--verify", "--out", str(tmp_path / "a")]) == 0
    assert "matches its manifest (3949 images)" in capsys.readouterr().out


def test_custom_grid_fill_mean_and_pairs(tmp_path):
    out = tmp_path / "grid"
    argv = [
        "make-dataset",
        "grid",
        "--dataset",
        "digits",
        "--scales",
        "0.5,1",
        "--angles=-90:90:90",
        "--fill",
        "mean",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_points"] == 6
    assert manifest["convention"]["padding"] == "constant"
    assert manifest["convention"]["fill"][0] == pytest.approx(0.1, abs=0.1)
    out = tmp_path / "pairs"
    argv = [
        "make-dataset",
        "pairs",
        "--dataset",
        "digits",
        "--pairs",
        "80",
        "--classes",
        "8",
        "--seed",
        "4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "pairs"
    assert manifest["pair_config"]["num_classes"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mystery"], r"'mystery' is not a named set .*: pass --dataset D"),
        (["mystery", "--dataset", "digits"], r"pass --sweep S \(or --scales/--angles/--shifts\)"),
        (["x", "--dataset", "digits", "--scales", "1:0:0.1"], r"--scales: step 0.1 goes away"),
        (["x", "--dataset", "digits", "--sweep", "zoom"], r"unknown sweep 'zoom'; valid sweeps"),
        (["x", "--dataset", "digitz", "--sweep", "scale"], r"unknown dataset 'digitz'.*'digits'"),
        (["scaled-mnist"], r"dataset 'mnist' is read from files: pass --data-root DIR, the folder"),
        (["x", "--dataset", "digits", "--sweep", "scale", "--fill", "a"], r"--fill must be"),
        (["x", "--dataset", "digits", "--pairs", "0"], r"--pairs must be >= 1; got 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    assert main(["make-dataset", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ")
    assert re.search(message, err), err


def test_console_script_exit_status_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geomrobust",
            "make-dataset",
            "scaled-mnist",
            "--data-root",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_force(tmp_path, capsys):
    argv = ["make-dataset", "x", "--dataset", "digits", "--scales", "0.5", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "pass --force to overwrite it" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
