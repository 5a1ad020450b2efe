"""Fixtures of the report tests (see ``_report_data`` for what the results are)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _report_data import GRID, SCALES, _model, write_eval, write_pairs

from transforms.datasets import ImageDataset, load_dataset


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
