"""The console script: exit statuses and one-line errors (the demo itself: test_demo.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from geomrobust.cli import main


def test_bad_input_exits_2_without_traceback(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "geomrobust", "demo", "--out", str(target)],
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
            "geomrobust",
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


@pytest.mark.parametrize("command", ["eval", "make-dataset"])
def test_dataset_errors_name_the_download_flag(command, tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    if command == "eval":
        argv = ["eval", "--checkpoint", "ref:mnist-cnn", "--dataset", "mnist", "--sweep", "scale"]
        argv += ["--data-root", str(empty), "--out", str(tmp_path / "r.json")]
    else:
        argv = ["make-dataset", "scaled-mnist", "--data-root", str(empty), "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST 'test' split not found under data root")
    assert "pass --download to fetch them" in err
    assert "download=True" not in err
