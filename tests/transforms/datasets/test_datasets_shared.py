"""The real partial MNIST and CIFAR-10 training files in ``../shared/data`` (see DATA.md).

Every image is loaded and compared with an independent reading of the same files (gzip +
NumPy for IDX, the standard unpickler for the trusted CIFAR batches), and the counts with
the documented ones. Skipped where the shared folder is absent.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from geomrobust.transforms.datasets import CIFAR10_CLASSES, ChecksumWarning, load_dataset

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
MNIST_ROOT = SHARED / "mnist-train"
CIFAR_ROOT = SHARED / "cifar10-train"
MNIST_TRAIN_IMAGES = 14_262  # documented in DATA.md: official train indices 0..14261
CIFAR_TRAIN_IMAGES = 4_660  # documented in DATA.md: rows 0..931 of each of 5 batches

needs_mnist = pytest.mark.skipif(
    not MNIST_ROOT.is_dir(), reason=f"shared MNIST files not found at {MNIST_ROOT}"
)
needs_cifar = pytest.mark.skipif(
    not CIFAR_ROOT.is_dir(), reason=f"shared CIFAR-10 files not found at {CIFAR_ROOT}"
)


def _sha256sums(prefix: str) -> dict[str, str]:
    """``name under the root -> sha256`` from the shared ``SHA256SUMS``."""
    sums = {}
    for line in (SHARED / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if name.startswith(prefix + "/"):
            sums[name[len(prefix) + 1 :]] = digest
    return sums


@needs_mnist
def test_shared_mnist_train_loads_every_image():
    raw = MNIST_ROOT / "MNIST" / "raw"
    labels = np.frombuffer(
        gzip.decompress((raw / "train-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8
    )
    pixels = np.frombuffer(
        gzip.decompress((raw / "train-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16
    )
    histogram = np.bincount(labels, minlength=10).tolist()
    assert len(labels) == MNIST_TRAIN_IMAGES
    assert sum(histogram) == MNIST_TRAIN_IMAGES

    with pytest.warns(ChecksumWarning, match="not the official"):  # a partial copy
        ds = load_dataset("mnist", split="train", root=MNIST_ROOT)
    assert len(ds) == MNIST_TRAIN_IMAGES
    assert ds.images.shape == (MNIST_TRAIN_IMAGES, 1, 28, 28)
    assert ds.class_counts().tolist() == histogram
    expected = pixels.reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255)
    assert torch.equal(ds.images, torch.from_numpy(expected))
    assert ds.labels.tolist() == labels.tolist()
    fp = ds.fingerprint
    assert {f.name: f.sha256 for f in fp.files} == _sha256sums("mnist-train")
    assert fp.n_images == MNIST_TRAIN_IMAGES
    assert fp.is_official is False


@needs_cifar
def test_shared_cifar10_train_loads_every_image(fmt):
    folder = CIFAR_ROOT / "cifar-10-batches-py"
    data, labels = [], []
    for i in range(1, 6):
        raw = (folder / f"data_batch_{i}").read_bytes()
        batch = pickle.loads(raw, encoding="latin1")  # trusted files, the standard reader
        assert "filenames" not in batch  # as DATA.md says
        assert fmt.py2_pickle(batch) == raw  # the test writer emits the exact format
        data.append(batch["data"])
        labels.extend(batch["labels"])
    histogram = np.bincount(labels, minlength=10).tolist()
    assert len(labels) == CIFAR_TRAIN_IMAGES
    assert sum(histogram) == CIFAR_TRAIN_IMAGES
    assert (folder / "batches.meta").read_bytes() == fmt.official_cifar_meta

    with pytest.warns(ChecksumWarning, match="not the official"):  # partial batches
        ds = load_dataset("cifar10", split="train", root=CIFAR_ROOT)
    assert len(ds) == CIFAR_TRAIN_IMAGES
    assert ds.images.shape == (CIFAR_TRAIN_IMAGES, 3, 32, 32)
    assert ds.class_counts().tolist() == histogram
    expected = np.concatenate(data).reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    assert torch.equal(ds.images, torch.from_numpy(expected))
    assert ds.labels.tolist() == labels
    assert ds.classes == CIFAR10_CLASSES
    fp = ds.fingerprint
    assert {f.name: f.sha256 for f in fp.files} == _sha256sums("cifar10-train")
    assert [f.official_md5_match for f in fp.files] == [False] * 5 + [True]  # meta is official


@needs_mnist
@needs_cifar
def test_shared_data_has_no_test_split():
    with pytest.raises(ValueError, match=r"'test' split not found"):
        load_dataset("mnist", split="test", root=MNIST_ROOT)
    with pytest.raises(ValueError, match=r"'test' split not found"):
        load_dataset("cifar10", split="test", root=CIFAR_ROOT)
