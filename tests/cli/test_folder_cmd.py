"""``geomrobust eval --dataset imagefolder``: users' folders and architectures through the
CLI; every bad input ends with exit status 2 and one ``error:`` line."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import torchvision
from _image_folders import random_folder, shared_cifar, write_folder

from geomrobust.cli import main as run_cli
from geomrobust.models import CheckpointMeta, build_model, save_checkpoint
from geomrobust.transforms.datasets import CIFAR10_CLASSES


def _eval(root, ckpt, out, *extra):
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
            "0.8,1",
            "--workers",
            "0",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """48 shared CIFAR images as PNGs, and a cifar-small checkpoint that records its
    classes."""
    source = shared_cifar(48)
    root = tmp_path_factory.mktemp("cifar") / "val"
    write_folder(root, source.images, source.labels.tolist(), source.classes)
    torch.manual_seed(0)
    ckpt = root.parent / "small.safetensors"
    save_checkpoint(
        ckpt, build_model("cifar-small"), meta=CheckpointMeta(class_names=CIFAR10_CLASSES)
    )
    return root, ckpt


def test_a_folder_is_evaluated_with_the_checkpoints_classes(cifar_folder, tmp_path, capsys):
    root, ckpt = cifar_folder
    out = tmp_path / "r.json"
    assert _eval(root, ckpt, out, "--max-images", "30") == 0
    result = json.loads(out.read_text())
    assert result["data"]["dataset"] == "imagefolder"
    assert result["data"]["split"] == "val"
    assert result["data"]["n"] == 30
    assert result["data"]["max_images"] == 30
    assert result["data"]["folder"]["class_source"] == "checkpoint"
    assert result["data"]["fingerprint"]["kind"] == "content"
    assert result["preprocess"]["order"][0] == "decode"
    assert len(result["clean"]["confusion"]) == 10
    assert "wrote" in capsys.readouterr().out


def test_split_does_not_apply_to_a_folder(cifar_folder, tmp_path, capsys):
    root, ckpt = cifar_folder
    assert _eval(root, ckpt, tmp_path / "r.json", "--split", "test") == 2
    assert "--split does not apply to imagefolder: --data-root DIR is the split" in _error(capsys)


def test_folder_options_need_a_folder(tmp_path, capsys, ckpt_dir):
    code = run_cli(
        [
            "eval",
            "--dataset",
            "digits",
            "--checkpoint",
            str(ckpt_dir / "cnn.safetensors"),
            "--sweep",
            "scale",
            "--class-map",
            "m.json",
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 2
    assert "--class-map apply only to --dataset imagefolder" in _error(capsys)


def _bad(tmp_path, name):
    root = tmp_path / name
    random_folder(root, ["airplane", "cat"], 2, size=(32, 32))
    return root


@pytest.mark.parametrize(
    ("case", "extra", "message"),
    [
        ("empty", (), r"has no class sub-folders"),
        ("empty-class", (), r"class folder .*/ship holds no images"),
        ("corrupt", (), r"cat/zz.png does not decode as an image .*; pass --skip-unreadable"),
        ("unknown", (), r"folder\(s\) 'kitten' .* not among the model's classes"),
        ("crop", ("--resize", "20", "--crop", "24"), r"crop 24×24 is larger than .*20×20"),
        (
            "map-range",
            ("--class-map", "MAP"),
            r"maps folder 'cat' to output 42 but the model has 10",
        ),
        ("bad-crop", ("--crop", "0"), r"--crop must be N or H,W with positive ints"),
        ("bad-workers", ("--workers", "-1"), r"--workers must be >= 0"),
    ],
)
def test_bad_folders_end_with_one_error_line(cifar_folder, tmp_path, capsys, case, extra, message):
    _, ckpt = cifar_folder
    root = tmp_path / "d"
    if case == "empty":
        root.mkdir()
    else:
        random_folder(root, ["airplane", "cat"], 2, size=(32, 32))
    if case == "empty-class":
        (root / "ship").mkdir()
    if case == "corrupt":
        (root / "cat" / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    if case == "unknown":
        shutil.move(root / "cat", root / "kitten")
    extra = list(extra)
    if "MAP" in extra:
        (tmp_path / "map.json").write_text(json.dumps({"airplane": 0, "cat": 42}))
        extra[extra.index("MAP")] = str(tmp_path / "map.json")
    out = tmp_path / "r.json"
    assert _eval(root, ckpt, out, *extra) == 2
    err = _error(capsys)
    assert re.search(message, err), err
    assert not out.exists()
    assert not (tmp_path / "r.json.partial").exists()


def test_skip_unreadable_counts_the_skipped_files(cifar_folder, tmp_path):
    _, ckpt = cifar_folder
    root = tmp_path / "d"
    random_folder(root, ["airplane", "cat"], 3, size=(32, 32))
    (root / "cat" / "zz.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "r.json"
    assert _eval(root, ckpt, out, "--skip-unreadable") == 0
    data = json.loads(out.read_text())["data"]
    assert data["n"] == 6
    assert data["unreadable"] == ["cat/zz.png"]
    assert data["folder"]["skip_unreadable"] is True


@pytest.fixture(scope="module")
def resnet18_state(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rn18")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    state = net.state_dict()
    torch.save(state, folder / "plain.pt")
    torch.save({f"module.{k}": v for k, v in state.items()}, folder / "ddp.pt")
    return folder


def test_torchvision_resnet18_from_state_dicts_with_and_without_prefix(
    cifar_folder, resnet18_state, tmp_path
):
    root, _ = cifar_folder
    results = {}
    for name in ("plain", "ddp"):
        out = tmp_path / f"{name}.json"
        code = _eval(
            root,
            resnet18_state / f"{name}.pt",
            out,
            "--model",
            "torchvision.models:resnet18",
            "--model-args",
            '{"num_classes": 10}',
            "--max-images",
            "24",
        )
        assert code == 0
        results[name] = json.loads(out.read_text())
    plain, ddp = results["plain"], results["ddp"]
    assert plain["points"] == ddp["points"]
    assert plain["model"]["checkpoint_unwrapped"] == []
    assert ddp["model"]["checkpoint_unwrapped"] == ["prefix 'module.'"]
    assert plain["model"]["model_args"] == {"num_classes": 10}
    assert plain["data"]["folder"]["class_source"] == "folders"  # a plain state dict


def test_without_model_args_the_class_count_error_says_how(
    cifar_folder, resnet18_state, tmp_path, capsys
):
    root, _ = cifar_folder
    code = _eval(
        root, resnet18_state / "plain.pt", tmp_path / "r.json", "--model", "torchvision:resnet18"
    )
    assert code == 2
    assert """--model-args '{"num_classes": 10}'""" in _error(capsys)
