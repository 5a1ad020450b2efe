"""The console script: demo outputs, refusal to overwrite, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from robustness.cli import main
from transforms import Sweep, get_sweep


def test_demo_writes_figures_and_exact_sweeps(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--examples", "2"]) == 0
    for name in ("scale", "rotation", "translation"):
        png = out / f"transforms_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweeps = json.loads((out / "sweeps.json").read_text())
    assert Sweep.from_dict(sweeps["scale"]) == get_sweep("scale")
    assert f"wrote {out / 'sweeps.json'}" in capsys.readouterr().out


def test_demo_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--examples", "1"]) == 0
    before = (out / "sweeps.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--examples", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "pass --force to overwrite" in err
    assert (out / "sweeps.json").stat().st_mtime_ns == before
    assert main(["demo", "--out", str(out), "--examples", "1", "--force"]) == 0


def test_bad_input_exits_2_without_traceback(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "robustness", "demo", "--out", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: --out {target} exists and is not a folder; choose another path"
    )
    assert "Traceback" not in proc.stderr


def test_argparse_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["demo"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_models_refs_lists_every_shipped_reference(capsys):
    assert main(["models", "--refs"]) == 0
    out = capsys.readouterr().out
    for name in ("ref:mnist-cnn ", "ref:mnist-cnn-dcnv2 ", "ref:pairs-mnist "):
        assert name in out
    assert main(["models", "--refs", "nope"]) == 2
    assert "unknown reference(s) ['nope']" in capsys.readouterr().err


def test_eval_bad_checkpoint_exits_2_through_the_console_script(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustness",
            "eval",
            "--checkpoint",
            str(tmp_path / "no.pt"),
            "--model",
            "mnist-cnn",
            "--dataset",
            "digits",
            "--sweep",
            "scale",
            "--out",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert "no.pt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.json").exists()
