"""Fingerprints: JSON round trip, validation, hashing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from geomrobust.transforms.datasets import DataFingerprint, FileDigest, array_sha256

SHA = "ab" * 32


def _example() -> DataFingerprint:
    return DataFingerprint(
        dataset="mnist",
        split="train",
        n_images=3,
        images_sha256=SHA,
        labels_sha256="cd" * 32,
        files=(
            FileDigest("MNIST/raw/train-images-idx3-ubyte.gz", SHA, 10, False),
            FileDigest("MNIST/raw/train-labels-idx1-ubyte", "ef" * 32, 20, None),
        ),
    )


def test_round_trip_through_json():
    fp = _example()
    data = json.loads(json.dumps(fp.to_dict()))
    assert data["files"][0] == {
        "name": "MNIST/raw/train-images-idx3-ubyte.gz",
        "sha256": SHA,
        "size_bytes": 10,
        "official_md5_match": False,
    }
    assert DataFingerprint.from_dict(data) == fp
    assert hash(DataFingerprint.from_dict(data)) == hash(fp)  # frozen, hashable


def test_from_dict_rejects_unknown_and_missing_keys():
    data = _example().to_dict()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['extra'\]"):
        DataFingerprint.from_dict({**data, "extra": 1})
    del data["n_images"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['n_images'\]"):
        DataFingerprint.from_dict(data)
    with pytest.raises(TypeError, match="expects a dict; got list"):
        DataFingerprint.from_dict([])
    with pytest.raises(TypeError, match="'files' must be a list; got str"):
        DataFingerprint.from_dict({**_example().to_dict(), "files": "x"})


def test_fields_are_validated():
    with pytest.raises(ValueError, match=r"images_sha256 must be 64 lowercase hex .*got 'AB"):
        DataFingerprint("mnist", "train", 1, SHA.upper(), SHA)
    with pytest.raises(TypeError, match="n_images must be an int; got True"):
        DataFingerprint("mnist", "train", True, SHA, SHA)
    with pytest.raises(ValueError, match="n_images must be >= 0; got -1"):
        DataFingerprint("mnist", "train", -1, SHA, SHA)
    with pytest.raises(ValueError, match="dataset must be a non-empty str"):
        DataFingerprint("", "train", 1, SHA, SHA)
    with pytest.raises(TypeError, match="files must hold FileDigest objects"):
        DataFingerprint("mnist", "train", 1, SHA, SHA, files=({"name": "x"},))
    with pytest.raises(TypeError, match="size_bytes must be an int"):
        FileDigest("a", SHA, 1.5)
    with pytest.raises(TypeError, match="official_md5_match must be True, False or None"):
        FileDigest("a", SHA, 1, "yes")


def test_is_official():
    digest = FileDigest("a", SHA, 1, True)
    assert DataFingerprint("x", "test", 0, SHA, SHA, (digest, digest)).is_official is True
    assert _example().is_official is None
    bad = FileDigest("a", SHA, 1, False)
    assert DataFingerprint("x", "test", 0, SHA, SHA, (digest, bad)).is_official is False


def test_array_sha256_is_of_little_endian_c_order_bytes():
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    expected = hashlib.sha256(a.tobytes()).hexdigest()
    assert array_sha256(a) == expected
    assert array_sha256(a.astype(">i8")) == expected
    assert array_sha256(np.asfortranarray(a)) == expected
    assert array_sha256(a.T) != expected


def test_head_is_a_prefix_with_its_own_fingerprint():
    from geomrobust.transforms.datasets import load_dataset

    data = load_dataset("digits", split="test")
    head = data.head(25)
    assert len(head) == 25
    assert torch.equal(head.images, data.images[:25])
    assert torch.equal(head.labels, data.labels[:25])
    assert (head.name, head.split, head.classes) == (data.name, data.split, data.classes)
    pixels = (data.images[:25].numpy() * 255).round().astype(np.uint8)
    assert head.fingerprint.images_sha256 == array_sha256(pixels)
    assert head.fingerprint.labels_sha256 == array_sha256(data.labels[:25].numpy())
    assert head.fingerprint.n_images == 25
    assert head.fingerprint.images_sha256 != data.fingerprint.images_sha256
    assert len(data.head(10_000)) == len(data)
    with pytest.raises(ValueError, match="n must be an int >= 0; got -1"):
        data.head(-1)
