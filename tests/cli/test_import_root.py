"""One import root: a user's repository with its own ``models``, ``transforms``,
``robustness`` and ``reports`` packages works with the suite, and the suite installs none
of those names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import geomrobust

_USER_PACKAGES = ("models", "transforms", "robustness", "reports")

_LENET = '''
from torch import nn


def build(num_classes=10):
    """The user's own LeNet for 1 x 28 x 28 digits."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, num_classes),
    )
'''


def _console_script() -> Path:
    script = Path(sys.executable).parent / "geomrobust"
    if not script.exists():
        pytest.skip("the geomrobust console script is not installed beside this Python")
    return script


def _user_repo(tmp_path: Path) -> Path:
    """A repository whose own packages have the generic names the suite used to install."""
    repo = tmp_path / "user-repo"
    for name in _USER_PACKAGES:
        (repo / name).mkdir(parents=True)
        (repo / name / "__init__.py").write_text(
            f'"""The user\'s own {name} package."""\nOWNER = "user"\n'
        )
    (repo / "models" / "lenet.py").write_text(textwrap.dedent(_LENET))
    sys.path.insert(0, str(repo))
    try:
        import importlib

        lenet = importlib.import_module("models.lenet")
        torch.manual_seed(0)
        torch.save(lenet.build().state_dict(), repo / "lenet.pt")
    finally:
        sys.path.remove(str(repo))
        for name in [n for n in sys.modules if n.split(".")[0] in _USER_PACKAGES]:
            del sys.modules[name]
    return repo


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": "."}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_user_repository_with_its_own_packages(tmp_path):
    repo = _user_repo(tmp_path)
    proc = _run(
        [
            str(_console_script()),
            "eval",
            "--checkpoint",
            "lenet.pt",
            "--model",
            "models.lenet:build",
            "--dataset",
            "digits",
            "--sweep",
            "scale",
            "--out",
            "r.json",
            "--no-progress",
        ],
        repo,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (repo / "r.json").is_file()
    assert "wrote r.json (11 points × 359 images)" in proc.stdout

    proc = _run([sys.executable, "-m", "geomrobust", "--version"], repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"geomrobust {geomrobust.__version__}"


def test_no_generic_top_level_names_are_installed(tmp_path):
    # From a folder outside the repository, only geomrobust.* resolves.
    code = textwrap.dedent(
        """
        import importlib.util
        import geomrobust.models, geomrobust.transforms, geomrobust.robustness
        import geomrobust.reports, geomrobust.cli
        print(" ".join(str(importlib.util.find_spec(n) is not None) for n in NAMES))
        """
    ).replace("NAMES", repr(_USER_PACKAGES))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    found = dict(zip(_USER_PACKAGES, proc.stdout.split(), strict=True))
    if found["robustness"] == "True":  # MadryLab's robustness may be installed: not ours
        spec = subprocess.run(
            [sys.executable, "-c", "import robustness; print(robustness.__file__)"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        assert "geomrobust" not in spec
        assert str(Path(geomrobust.__file__).parents[1]) not in spec
        found["robustness"] = "False"
    assert found == dict.fromkeys(_USER_PACKAGES, "False")


@pytest.mark.parametrize("package", ["geomrobust", "geomrobust.robustness", "geomrobust.models"])
def test_every_public_name_resolves(package):
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []
