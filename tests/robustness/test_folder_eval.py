"""Evaluating image folders: the same numbers as the same images in memory, each image
decoded once whatever the number of points, class maps, unreadable files, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _image_folders import random_folder, shared_cifar, write_folder
from torch import nn

from geomrobust.models import build_model
from geomrobust.robustness import EvalInputError, EvalOptions, evaluate
from geomrobust.transforms import make_sweep
from geomrobust.transforms.datasets import (
    OTHER_CLASS,
    ImageDataset,
    Preprocess,
    load_image_folder,
)
from geomrobust.transforms.datasets import _folder as folder_module

SWEEP = make_sweep(scales=(0.8, 1.0, 1.25), angles=(-20.0, 0.0, 20.0))


def _cifar_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cifar-small").eval()


def _in_folder_order(source: ImageDataset, folder) -> ImageDataset:
    """``source``'s images reordered as the folder lists them (files are named by index)."""
    order = [int(Path(f).stem) for f in folder.files]
    head = source.head(len(source))
    return ImageDataset(
        head.name,
        head.split,
        head.images[order].contiguous(),
        head.labels[order].clone(),
        head.classes,
        head.fingerprint,
    )


def _assert_same_points(a, b) -> None:
    assert a.clean.correct == b.clean.correct
    for p, q in zip(a.points, b.points, strict=True):
        assert (p.n, p.correct) == (q.n, q.correct)
        assert np.array_equal(np.asarray(p.confusion), np.asarray(q.confusion))
    assert np.array_equal(a.predictions.points, b.predictions.points)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_png_folder_gives_exactly_the_pickles_result(tmp_path, workers):
    source = shared_cifar(96)
    write_folder(tmp_path, source.images, source.labels.tolist(), source.classes)
    folder = load_image_folder(tmp_path, classes=source.classes)
    model = _cifar_model()
    options = EvalOptions(batch_size=20, workers=workers)
    from_folder = evaluate(model, folder, SWEEP, options=options)
    in_memory = evaluate(model, _in_folder_order(source, folder), SWEEP, options=options)
    _assert_same_points(from_folder, in_memory)
    assert from_folder.data.dataset == "imagefolder"
    assert from_folder.data.folder["class_source"] == "checkpoint"
    assert from_folder.preprocess["order"][:4] == [
        "decode",
        "to_float_0_1",
        "resize_shorter_side",
        "centre_crop",
    ]


def test_each_image_is_decoded_once_whatever_the_number_of_points(tmp_path, monkeypatch):
    random_folder(tmp_path, ["a", "b"], 7, size=(16, 16))
    calls = []
    real = folder_module.decode_image_file

    def counting(path, **kw):
        calls.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(folder_module, "decode_image_file", counting)
    data = load_image_folder(tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)).eval()
    result = evaluate(model, data, SWEEP, options=EvalOptions(batch_size=4, workers=0))
    assert len(result.points) == 9
    assert sorted(calls) == sorted(Path(f).name for f in data.files)  # 14 decodes, not 14 × 9


def test_resize_and_crop_happen_before_the_sweep(tmp_path):
    source = shared_cifar(24)
    write_folder(tmp_path, source.images, source.labels.tolist(), source.classes)
    folder = load_image_folder(tmp_path, classes=source.classes)
    pre = Preprocess(resize=40, crop=(32, 32))
    model = _cifar_model()
    options = EvalOptions(batch_size=8, preprocess=pre)
    from_folder = evaluate(model, folder, SWEEP, options=options)
    in_memory = evaluate(model, _in_folder_order(source, folder), SWEEP, options=options)
    _assert_same_points(from_folder, in_memory)
    assert from_folder.preprocess["resize_shorter_side"] == 40
    assert from_folder.preprocess["centre_crop"] == [32, 32]


class _FixedLogits(nn.Module):
    """A 10-output model whose logits are a fixed function of the image mean."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 10)

    def forward(self, x):
        return self.proj(x.mean(dim=(2, 3)))


def test_a_class_map_scores_the_full_output_and_confuses_into_other(tmp_path):
    source = shared_cifar(60)
    keep = [i for i, y in enumerate(source.labels.tolist()) if y in (1, 3, 8)]
    images, labels = source.images[keep], source.labels[keep].tolist()
    names = {1: "n_auto", 3: "n_cat", 8: "n_ship"}
    write_folder(tmp_path / "d", images, labels, [names.get(i, "-") for i in range(10)])
    class_map = {names[k]: k for k in names}
    data = load_image_folder(tmp_path / "d", class_map=class_map)
    assert data.classes == ("n_auto", "n_cat", "n_ship", OTHER_CLASS)
    torch.manual_seed(3)
    model = _FixedLogits().eval()
    result = evaluate(model, data, "rotation", options=EvalOptions(batch_size=16))
    order = [int(Path(f).stem) for f in data.files]
    x = torch.stack([images[i] for i in order])
    with torch.no_grad():
        full = model(x).argmax(1)  # over all 10 outputs
    truth = torch.tensor([labels[i] for i in order])
    assert result.clean.correct == int((full == truth).sum())
    expected = np.zeros((4, 4), dtype=np.int64)
    position = {1: 0, 3: 1, 8: 2}
    for t, p in zip(truth.tolist(), full.tolist(), strict=True):
        expected[position[t], position.get(p, 3)] += 1
    assert np.array_equal(np.asarray(result.clean.confusion), expected)
    assert expected[:, 3].sum() > 0  # the model does predict outside the map: a real check


def test_class_map_outputs_beyond_the_model_are_an_error(tmp_path):
    random_folder(tmp_path, ["a", "b"], 1, size=(8, 8))
    data = load_image_folder(tmp_path, class_map={"a": 0, "b": 12})
    model = _FixedLogits().eval()
    with pytest.raises(EvalInputError, match=r"maps folder 'b' to output 12 but the model has 10"):
        evaluate(model, data, "rotation")


def test_unreadable_files_are_skipped_and_listed(tmp_path):
    random_folder(tmp_path, ["a", "b"], 4, size=(10, 10))
    clean = load_image_folder(tmp_path)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    skipping = load_image_folder(tmp_path, skip_unreadable=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(300, 2)).eval()
    options = EvalOptions(batch_size=3)
    a = evaluate(model, clean, SWEEP, options=options)
    b = evaluate(model, skipping, SWEEP, options=options)
    assert b.data.n == 8
    assert b.data.unreadable == ("a/broken.jpg",)
    _assert_same_points(a, b)


def test_a_streamed_run_resumes_its_finished_blocks(tmp_path):
    random_folder(tmp_path / "d", ["a", "b"], 9, size=(8, 8))
    data = load_image_folder(tmp_path / "d")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 2)).eval()
    options = EvalOptions(batch_size=2)  # blocks of 16 batches: 32 images -> 1 block
    partial = tmp_path / "r.partial"
    first = evaluate(model, data, SWEEP, options=options, partial=partial)
    assert first.run["shards_computed"] == first.run["shards"] == 9
    again = evaluate(model, data, SWEEP, options=options, partial=partial, resume=True)
    assert (again.run["shards_computed"], again.run["shards_resumed"]) == (0, 9)
    _assert_same_points(first, again)


def test_grey_folder_for_a_one_channel_model(tmp_path):
    digits = [np.full((28, 28), v, dtype=np.uint8) for v in (0, 80, 160, 240)]
    write_folder(tmp_path, digits, [0, 1, 2, 3], [str(i) for i in range(10)])
    data = load_image_folder(tmp_path, channels=1, classes=tuple(str(i) for i in range(10)))
    torch.manual_seed(0)
    model = build_model("mnist-cnn").eval()
    result = evaluate(model, data, "rotation")
    assert result.data.n == 4
    assert result.data.folder["channels"] == 1
