"""Transformed test sets: lazy indexing, materialised files, manifests, verification."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geomrobust.transforms import AffineParams, get_sweep, make_sweep, warp
from geomrobust.transforms.datasets import (
    DatasetFormatError,
    DatasetNotFoundError,
    TransformedDataset,
    load_dataset,
    materialise,
    quantise,
    verify_materialised,
)


@pytest.fixture(scope="module")
def digits_test():
    return load_dataset("digits", split="test")


def test_item_k_is_image_k_mod_n_under_point_k_div_n(digits_test):
    sweep = get_sweep("scale")
    data = TransformedDataset(digits_test, sweep)
    n = len(digits_test)
    assert len(data) == n * 11
    k = 3 * n + 17
    image, label, point = data[k]
    assert point == 3
    assert label == int(digits_test.labels[17])
    expected = warp(digits_test.images[17:18], sweep.points[3])[0]
    assert torch.equal(image, expected)
    assert torch.equal(data[-1][0], data[len(data) - 1][0])
    with pytest.raises(IndexError, match=f"index {len(data)} out of range"):
        data[len(data)]


def test_identity_point_gives_the_source_images(digits_test):
    data = TransformedDataset(digits_test, get_sweep("scale"))
    images, labels = data.batch(5)  # scale 1.0
    assert torch.equal(images, digits_test.images)
    assert torch.equal(labels, digits_test.labels)


def test_options_are_validated():
    ds = load_dataset("digits", split="test")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        TransformedDataset(ds, get_sweep("scale"), interpolation="cubic")
    with pytest.raises(ValueError, match="fill is only used with padding='constant'"):
        TransformedDataset(ds, get_sweep("scale"), fill=0.5)
    with pytest.raises(TypeError, match="sweep must be a Sweep; got str"):
        TransformedDataset(ds, "scale")


def test_quantise_rounds_half_to_even_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 1.0, 2.0]).view(1, 1, 1, 6)
    assert quantise(x).flatten().tolist() == [0, 0, 0, 2, 255, 255]


def test_materialise_writes_exact_files_and_manifest(tmp_path, digits_test):
    sweep = make_sweep(scales=(0.5, 1.0), angles=(0.0, 90.0))
    data = TransformedDataset(digits_test, sweep, interpolation="nearest")
    manifest = materialise(data, tmp_path / "set", name="tiny", batch_size=100)
    n = len(digits_test)
    images = np.load(tmp_path / "set" / "images.npy")
    params = np.load(tmp_path / "set" / "params.npy")
    point_index = np.load(tmp_path / "set" / "point_index.npy")
    source_index = np.load(tmp_path / "set" / "source_index.npy")
    labels = np.load(tmp_path / "set" / "labels.npy")
    assert images.shape == (4 * n, 1, 28, 28)
    assert images.dtype == np.uint8
    # Row k: image k % n under point k // n, as the manifest says.
    k = 2 * n + 9
    assert point_index[k] == 2
    assert source_index[k] == 9
    assert labels[k] == digits_test.labels[9]
    assert tuple(params[k]) == (1.0, 0.0, 0.0, 0.0)
    assert np.array_equal(images[k], quantise(digits_test.images[9:10])[0])
    rotated = warp(digits_test.images[9:10], AffineParams(1.0, 90.0), interpolation="nearest")
    assert np.array_equal(images[3 * n + 9], quantise(rotated)[0])
    on_disk = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["schema"] == "geomrobust.dataset/1"
    assert manifest["source"] == digits_test.fingerprint.to_dict()
    assert manifest["convention"]["interpolation"] == "nearest"
    assert manifest["convention"]["align_corners"] is False
    assert manifest["sweep"] == sweep.to_dict()
    assert sorted(manifest["files"]) == sorted(
        ["images.npy", "labels.npy", "params.npy", "point_index.npy", "source_index.npy"]
    )
    assert not list((tmp_path / "set").glob(".*part"))


def test_materialise_is_byte_identical_and_verifies(tmp_path, digits_test):
    data = TransformedDataset(digits_test, get_sweep("scale"))
    materialise(data, tmp_path / "a", name="scaled-digits")
    materialise(data, tmp_path / "b", name="scaled-digits", batch_size=37)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    assert verify_materialised(tmp_path / "a")["n_images"] == len(data)


def test_materialise_refuses_to_overwrite_without_force(tmp_path, digits_test):
    data = TransformedDataset(digits_test, make_sweep(scales=(0.5,)))
    materialise(data, tmp_path, name="x")
    with pytest.raises(FileExistsError, match="already holds a generated dataset"):
        materialise(data, tmp_path, name="x")
    materialise(data, tmp_path, name="x", force=True)


def test_verify_detects_corruption_and_missing_files(tmp_path, digits_test):
    data = TransformedDataset(digits_test, make_sweep(scales=(0.5,)))
    materialise(data, tmp_path, name="x")
    images = tmp_path / "images.npy"
    raw = bytearray(images.read_bytes())
    raw[-1] ^= 0xFF
    images.write_bytes(bytes(raw))
    with pytest.raises(DatasetFormatError, match=r"images.npy differ from the sha256"):
        verify_materialised(tmp_path)
    images.unlink()
    with pytest.raises(DatasetNotFoundError, match="images.npy is listed in manifest.json"):
        verify_materialised(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="is not a valid manifest"):
        verify_materialised(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not a generated dataset folder"):
        verify_materialised(tmp_path / "nowhere")
