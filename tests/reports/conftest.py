"""Fixtures of the report tests (see ``_report_data`` for what the results are)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _report_data import EVIL, GRID, SCALES, _model, write_eval, write_pairs

from geomrobust.reports import ReportFiles, build_report
from geomrobust.transforms.datasets import ImageDataset, load_dataset


@pytest.fixture(scope="session")
def small_digits() -> ImageDataset:
    return load_dataset("digits", split="test").head(60)


@pytest.fixture(scope="session")
def results(tmp_path_factory, small_digits) -> dict[str, Path]:
    """``cnn_grid``, ``dcn_grid``, ``cnn_scale``, ``dcn_scale`` and ``pairs`` result files."""
    folder = tmp_path_factory.mktemp("results")
    cnn, dcn = _model("mnist-cnn", 0), _model("mnist-cnn-dcnv2", 1)
    with torch.no_grad():  # a DCN twin starts as its regular model; make it differ
        for p in dcn.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = {}
    for key, model, name in (("cnn", cnn, "mnist-cnn"), ("dcn", dcn, "mnist-cnn-dcnv2")):
        out[f"{key}_grid"] = write_eval(folder, f"{key}-grid", model, small_digits, GRID, name=name)
        out[f"{key}_scale"] = write_eval(
            folder, f"{key}-scale", model, small_digits, SCALES, name=name
        )
    out["pairs"] = write_pairs(folder, "pairs", data=small_digits)
    return out


@pytest.fixture(scope="session")
def full_report(results, small_digits, tmp_path_factory) -> ReportFiles:
    """A report of every result: two sweep groups and the pair classifier."""
    out = tmp_path_factory.mktemp("full") / "report"
    paths = [results[k] for k in ("cnn_grid", "dcn_grid", "cnn_scale", "dcn_scale", "pairs")]
    return build_report(paths, out, progress=False, extra_data=[small_digits])


@pytest.fixture(scope="session")
def evil_report(small_digits, tmp_path_factory) -> ReportFiles:
    """A report whose first model is named ``<script>alert(1)</script>`` and whose results
    lie in a folder named ``odd <b>&"folder``."""
    folder = tmp_path_factory.mktemp("evil") / 'odd <b>&"folder'
    folder.mkdir()
    a = write_eval(folder, "a", _model("mnist-cnn", 0), small_digits, GRID, name=EVIL)
    b = write_eval(folder, "b", _model("mnist-cnn", 5), small_digits, GRID, name="plain")
    return build_report([a, b], folder.parent / "out", progress=False, extra_data=[small_digits])
