"""Image folders: listing, class assignment, decoding, preprocessing, fingerprints, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from _image_folders import random_folder, write_folder
from PIL import Image
from torchvision.transforms import v2

from geomrobust.transforms.datasets import (
    OTHER_CLASS,
    DatasetFormatError,
    DatasetNotFoundError,
    Preprocess,
    decode_image_file,
    load_image_folder,
    read_class_map,
)


def _all(data, **kw):
    return list(data.batches([(0, len(data))], batch_size=4, **kw))


def test_listing_follows_imagefolder_rules(tmp_path):
    random_folder(tmp_path, ["cat", "ant", "bee"], 2)
    (tmp_path / "cat" / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / ".cache").mkdir()
    sub = tmp_path / "bee" / "deeper"
    sub.mkdir()
    shutil.copy(tmp_path / "bee" / "00004.png", sub / "zz.png")
    data = load_image_folder(tmp_path)
    assert data.classes == ("ant", "bee", "cat")  # sorted folder names
    assert data.files == (
        "ant/00002.png",
        "ant/00003.png",
        "bee/00004.png",
        "bee/00005.png",
        "bee/deeper/zz.png",
        "cat/00000.png",
        "cat/00001.png",
    )
    assert data.labels.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert data.class_source == "folders"
    assert data.output_index is None


def test_folders_are_matched_to_the_models_classes_by_name(tmp_path):
    random_folder(tmp_path, ["dog", "airplane"], 2)
    model_classes = ("airplane", "bird", "cat", "dog")
    data = load_image_folder(tmp_path, classes=model_classes)
    assert data.classes == model_classes
    assert data.labels.tolist() == [0, 0, 3, 3]  # airplane files first (sorted folders)
    assert data.class_source == "checkpoint"


def test_a_folder_not_among_the_models_classes_is_named(tmp_path):
    random_folder(tmp_path, ["dgo", "cat"], 1)
    with pytest.raises(DatasetFormatError, match=r"'dgo' \(did you mean 'dog'\?\)"):
        load_image_folder(tmp_path, classes=("cat", "dog"))


@pytest.mark.parametrize("form", ["json", "lines"])
def test_a_class_map_gives_model_outputs_and_an_other_class(tmp_path, form):
    random_folder(tmp_path / "d", ["n02", "n01"], 1)
    mapping = {"n01": 7, "n02": 3, "n99": 0}
    path = tmp_path / "map.txt"
    if form == "json":
        path.write_text(json.dumps(mapping))
    else:
        path.write_text("# wnid index\n" + "".join(f"{k} {v}\n" for k, v in mapping.items()))
    assert read_class_map(path) == mapping
    data = load_image_folder(tmp_path / "d", class_map=path)
    assert data.classes == ("n02", "n01", OTHER_CLASS)  # in output order, then other
    assert data.output_index == (3, 7)
    assert data.labels.tolist() == [1, 0]  # n01 first (sorted folders) -> label of output 7


def test_class_map_errors(tmp_path):
    random_folder(tmp_path / "d", ["a", "b"], 1)
    with pytest.raises(DatasetFormatError, match=r"folder\(s\) 'b' .* not in class_map"):
        load_image_folder(tmp_path / "d", class_map={"a": 0})
    with pytest.raises(DatasetFormatError, match="maps folders 'a' and 'b' to the same output 2"):
        load_image_folder(tmp_path / "d", class_map={"a": 2, "b": 2})
    bad = tmp_path / "bad.txt"
    bad.write_text("a one\n")
    with pytest.raises(DatasetFormatError, match=r"folder 'a' maps to 'one'; expected a model"):
        read_class_map(bad)
    bad.write_text("a 1 extra\n")
    with pytest.raises(DatasetFormatError, match=r"line 1: expected 'folder index'"):
        read_class_map(bad)
    with pytest.raises(DatasetNotFoundError, match="cannot read class_map"):
        read_class_map(tmp_path / "missing.json")


def test_empty_folder_and_empty_class_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="has no class sub-folders"):
        load_image_folder(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="does not exist; pass root=DIR"):
        load_image_folder(tmp_path / "nope")
    random_folder(tmp_path, ["a"], 1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DatasetFormatError, match=r"class folder .*empty holds no images"):
        load_image_folder(tmp_path)


def test_png_pixels_come_back_exactly(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(3)]
    write_folder(tmp_path, arrays, [0, 0, 1], ["a", "b"])
    data = load_image_folder(tmp_path)
    (batch,) = _all(data)
    expected = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float() / 255
    assert batch.ok is None
    assert torch.equal(batch.images, expected)


def test_grey_images_become_rgb_and_colour_becomes_grey_only_when_asked(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "g.png")
    x, colour = decode_image_file(tmp_path / "g.png", channels=3)
    assert not colour
    assert x.shape == (3, 3, 4)
    assert torch.equal(x[0], x[2])
    assert torch.equal(x[0], torch.from_numpy(grey).float() / 255)
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"c.png is a colour image but the model takes 1 channel"):
        decode_image_file(tmp_path / "c.png", channels=1)
    x, colour = decode_image_file(tmp_path / "c.png", channels=1, grey=True)
    assert colour
    assert x.shape == (1, 2, 2)
    assert torch.allclose(x, torch.full((1, 2, 2), 0.2989))


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".jpg"])
def test_other_formats_decode(tmp_path, suffix):
    rng = np.random.default_rng(2)
    array = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(array).save(
        tmp_path / f"x{suffix}", **({"lossless": True} if suffix == ".webp" else {})
    )
    x, _ = decode_image_file(tmp_path / f"x{suffix}", channels=3)
    assert x.shape == (3, 6, 9)
    if suffix != ".jpg":  # BMP and lossless WebP keep the pixels
        assert torch.equal(x, torch.from_numpy(array).permute(2, 0, 1).float() / 255)


def test_a_corrupt_file_is_named_or_skipped(tmp_path):
    random_folder(tmp_path, ["a", "b"], 3)
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    data = load_image_folder(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"b/broken.png does not decode .*skip_unreadable"):
        _all(data, workers=0)
    skipping = load_image_folder(tmp_path, skip_unreadable=True)
    batches = _all(skipping)
    oks = torch.cat(
        [
            b.ok if b.ok is not None else torch.ones(b.stop - b.start, dtype=torch.bool)
            for b in batches
        ]
    )
    broken = skipping.files.index("b/broken.png")
    assert oks.tolist() == [i != broken for i in range(len(skipping))]


def test_mixed_sizes_need_a_crop(tmp_path):
    write_folder(
        tmp_path, [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)], [0, 0], ["a"]
    )
    data = load_image_folder(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"differ in size after preprocessing .*crop="):
        _all(data)
    (batch,) = _all(data, preprocess=Preprocess(crop=(6, 6)))
    assert batch.images.shape == (2, 3, 6, 6)


def test_a_crop_larger_than_the_resized_image_is_an_error(tmp_path):
    write_folder(tmp_path, [np.zeros((20, 30, 3), np.uint8)], [0], ["a"])
    data = load_image_folder(tmp_path)
    with pytest.raises(
        DatasetFormatError, match=r"crop 16×16 is larger than .*00000.png resized to 10×15"
    ):
        _all(data, preprocess=Preprocess(resize=10, crop=(16, 16)))


@pytest.mark.parametrize("size", [(37, 50), (50, 37), (31, 31)])
def test_preprocess_matches_torchvision_resize_and_centre_crop(size):
    x = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))
    ours = Preprocess(resize=24, crop=(20, 22))(x)
    theirs = v2.Compose([v2.Resize(24, antialias=True), v2.CenterCrop((20, 22))])(x)
    assert torch.equal(ours, theirs)
    h, w = Preprocess(resize=24).output_size(*size)
    assert (h, w) == tuple(v2.Resize(24)(x).shape[-2:])


def test_max_images_keeps_the_first_files(tmp_path):
    random_folder(tmp_path, ["a", "b"], 3)
    full = load_image_folder(tmp_path)
    head = load_image_folder(tmp_path, max_images=4)
    assert head.files == full.files[:4]
    assert head.max_images == 4
    assert head.fingerprint.n_images == 4
    assert head.fingerprint != full.fingerprint


def test_fingerprint_follows_content_not_location(tmp_path):
    random_folder(tmp_path / "one", ["a", "b"], 2)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    one, two = load_image_folder(tmp_path / "one"), load_image_folder(tmp_path / "two")
    assert one.fingerprint == two.fingerprint
    path = tmp_path / "two" / "b" / "00003.png"
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1  # same size and name, other content
    path.write_bytes(bytes(raw))
    changed = load_image_folder(tmp_path / "two")
    assert changed.fingerprint.listing_sha256 == one.fingerprint.listing_sha256
    assert changed.fingerprint.content_sha256 != one.fingerprint.content_sha256
    fast = load_image_folder(tmp_path / "two", fingerprint="fast")
    assert fast.fingerprint.kind == "fast"
    assert fast.fingerprint.listing_sha256 == one.fingerprint.listing_sha256


def test_batches_never_cross_a_range(tmp_path):
    random_folder(tmp_path, ["a", "b"], 5)
    data = load_image_folder(tmp_path)
    spans = [(b.start, b.stop) for b in data.batches([(0, 6), (6, 10)], batch_size=4)]
    assert spans == [(0, 4), (4, 6), (6, 10)]


def test_workers_give_the_same_images(tmp_path):
    random_folder(tmp_path, ["a", "b"], 5)
    data = load_image_folder(tmp_path)
    inline = torch.cat([b.images for b in _all(data, workers=0)])
    pooled = torch.cat([b.images for b in _all(data, workers=2)])
    assert torch.equal(inline, pooled)
