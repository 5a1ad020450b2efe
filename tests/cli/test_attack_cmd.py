"""``geomrobust attack`` through its parser: the result file, one-line errors, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geomrobust.cli import main as run_cli
from geomrobust.robustness import load_attack_result
from geomrobust.robustness._attack import AttackPlan


def _attack(out, *extra):
    return run_cli(
        [
            "attack",
            "--checkpoint",
            "ref:mnist-cnn",
            "--dataset",
            "digits",
            "--max-images",
            "64",
            "--grid",
            "5,3,3",
            "--k",
            "3",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def _error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    err = [line for line in err if not line.startswith("warning:")]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_attack_writes_the_result(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert _attack(out, "--preset", "engstrom-mnist") == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "geomrobust.attack/1"
    assert data["attack"]["preset"] == "engstrom-mnist"
    assert data["summary"]["grid"] == [5, 3, 3]  # the option overrides the preset
    assert data["summary"]["k"] == 3
    assert data["data"]["max_images"] == 64
    printed = capsys.readouterr().out
    assert "worst-of-k" in printed
    assert "pair consistency" in printed
    result = load_attack_result(out)
    assert result.arrays["labels"].shape == (64,)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--max-angle-deg", "0", "--max-shift-px", "0"), r"box is empty \(--max-angle-deg=0"),
        (("--k", "0"), r"--k must be an int >= 1; got 0"),
        (("--grid", "31,0,5"), r"--grid must be three sizes ANGLES,SHIFTS_X,SHIFTS_Y"),
        (("--preset", "engstrom-mnst"), r"unknown preset 'engstrom-mnst'.*'engstrom-mnist'"),
        (("--canvas-pad", "-1"), r"--canvas-pad must be an int >= 0"),
    ],
)
def test_bad_attacks_end_with_one_line(tmp_path, capsys, extra, message):
    import re

    out = tmp_path / "a.json"
    assert _attack(out, *extra) == 2
    assert re.search(message, _error(capsys))
    assert not out.exists()


def test_an_interrupted_attack_resumes(tmp_path, monkeypatch):
    ref = tmp_path / "ref.json"
    assert _attack(ref, "--batch-size", "8") == 0  # one block: 16 batches of 8 > 64 images
    out = tmp_path / "a.json"
    original = AttackPlan._outcomes
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AttackPlan, "_outcomes", flaky)
    # blocks of 16 batches of 2 images: the 20th batch is in the second of the 2 blocks
    assert _attack(out, "--batch-size", "2", "--max-images", "64") == 130
    assert not out.exists()
    monkeypatch.setattr(AttackPlan, "_outcomes", original)
    assert _attack(out, "--batch-size", "2", "--resume") == 0
    a, b = load_attack_result(ref), load_attack_result(out)
    assert a.summary == b.summary
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key], equal_nan=True), key
    assert b.run["shards_resumed"] > 0


def test_forward_flags_are_recorded(tmp_path):
    out = tmp_path / "a.json"
    assert _attack(out, "--graph", "freeze", "--max-images", "16") == 0
    run = json.loads(out.read_text())["run"]
    assert (run["graph"], run["numerics"], run["cpu_fast_path"]) == ("freeze", "exact", True)
