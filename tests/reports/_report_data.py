"""Small real results for the report tests, written to disk.

Two untrained models (``mnist-cnn`` and its DCNv2 twin, different seeds so their
predictions differ) are evaluated on 60 digits under a 3 × 3 scale × rotation grid and a
3-point scale sweep, and an untrained ``pair-net`` on 70 pairs. That is enough for every
table and figure of a report and takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from geomrobust.models import build_model
from geomrobust.robustness import EvalOptions, ModelRecord, evaluate, evaluate_pairs, write_result
from geomrobust.robustness._io import write_pair_result
from geomrobust.transforms import make_sweep

EVIL = "<script>alert(1)</script>"
GRID = make_sweep(scales=(0.8, 1.0, 1.2), angles=(-30.0, 0.0, 30.0), name="small-grid")
SCALES = make_sweep(scales=(0.75, 1.0, 1.25), name="scale")


def _model(name: str, seed: int):
    torch.manual_seed(seed)
    return build_model(name).eval()


def write_eval(folder: Path, stem: str, model, data, sweep, *, name: str) -> Path:
    record = ModelRecord(
        name=name,
        params=sum(p.numel() for p in model.parameters()),
        num_classes=10,
        class_names=tuple(data.classes),
    )
    result = evaluate(model, data, sweep, options=EvalOptions(batch_size=64), record=record)
    return write_result(result, folder / f"{stem}.json")


def write_pairs(folder: Path, stem: str, *, data, name: str = "pair-net", n: int = 70) -> Path:
    model = _model("pair-net", 3)
    record = ModelRecord(name=name, params=sum(p.numel() for p in model.parameters()))
    result = evaluate_pairs(model, data, num_pairs=n, seed=0, record=record)
    return write_pair_result(result, folder / f"{stem}.json")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())
