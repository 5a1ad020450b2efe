"""Reports of image-folder results: the gallery re-reads the shown images from the folder,
after checking that the folder is the one that was evaluated."""

from __future__ import annotations

import json

import torch
from _image_folders import random_folder

from geomrobust.cli import main as run_cli
from geomrobust.models import CheckpointMeta, build_model, save_checkpoint


def _eval(root, ckpt, out):
    return run_cli(
        [
            "eval",
            "--dataset",
            "imagefolder",
            "--data-root",
            str(root),
            "--checkpoint",
            str(ckpt),
            "--scales",
            "0.8,1.2",
            "--resize",
            "40",
            "--crop",
            "32",
            "--workers",
            "0",
            "--out",
            str(out),
            "--no-progress",
        ]
    )


def test_the_gallery_of_a_folder_result_rereads_the_folder(tmp_path):
    classes = ("airplane", "automobile", "bird")
    root = random_folder(tmp_path / "val", classes, 4, size=(48, 44))
    torch.manual_seed(0)
    ckpt = tmp_path / "m.safetensors"
    model = build_model("cifar-small", num_classes=3)
    save_checkpoint(ckpt, model, meta=CheckpointMeta(class_names=classes))
    result = tmp_path / "r.json"
    assert _eval(root, ckpt, result) == 0
    assert run_cli(["report", str(result), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    figures = sorted(p.name for p in (tmp_path / "rep" / "figures").iterdir())
    assert any("-gallery-" in name for name in figures), figures
    # the folder changes: the gallery is left out, and the report says why
    (root / "bird" / "00011.png").write_bytes((root / "bird" / "00010.png").read_bytes())
    code = run_cli(["report", str(result), "--out", str(tmp_path / "rep2"), "--no-progress"])
    assert code == 0
    figures = sorted(p.name for p in (tmp_path / "rep2" / "figures").iterdir())
    assert not any("-gallery-" in name for name in figures)
    page = (tmp_path / "rep2" / "report.md").read_text()
    assert "is not the folder that was evaluated" in page
    assert json.loads(result.read_text())["preprocess"]["centre_crop"] == [32, 32]
