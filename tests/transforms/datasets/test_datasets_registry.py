"""The entry point: names, splits, roots, downloads, and the contract every dataset keeps."""

from __future__ import annotations

import json
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from geomrobust.transforms.datasets import (
    ChecksumWarning,
    DataFingerprint,
    DatasetError,
    DatasetNotFoundError,
    ImageDataset,
    Split,
    dataset_info,
    list_datasets,
    load_dataset,
    load_digits,
)
from geomrobust.transforms.datasets._registry import register_dataset


def _load(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)
        return load_dataset(name, **kwargs)


@pytest.fixture
def tiny_roots(tmp_path, write_mnist, write_cifar):
    """``name -> data root`` holding a few images of both splits of each file dataset."""
    roots = {}
    for name, folder in (("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")):
        for split in ("train", "test"):
            write_mnist(tmp_path / name / folder, split, n=3)
        roots[name] = tmp_path / name
    for split in ("train", "test"):
        write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", split, n=2)
    roots["cifar10"] = tmp_path / "cifar10"
    return roots


def test_list_datasets():
    assert list_datasets() == ("cifar10", "digits", "fashion-mnist", "mnist")


@pytest.mark.parametrize("name", list_datasets())
@pytest.mark.parametrize("split", ["train", "test"])
def test_every_dataset_keeps_the_contract(name, split, tiny_roots):
    info = dataset_info(name)
    root = tiny_roots.get(name)
    assert (root is not None) == info.needs_root, f"add a writer for {name!r} to tiny_roots"
    ds = _load(name, split=split, root=root)
    assert isinstance(ds, ImageDataset)
    assert ds.name == name
    assert ds.split == split
    assert ds.images.dtype == torch.float32
    assert ds.images.shape[1:] == info.image_shape
    assert ds.images.is_contiguous()
    assert len(ds) == ds.images.shape[0] > 0
    assert float(ds.images.min()) >= 0.0
    assert float(ds.images.max()) <= 1.0
    assert ds.labels.dtype == torch.int64
    assert ds.labels.shape == (len(ds),)
    assert ds.classes == info.classes
    assert len(ds.classes) == 10
    assert ds.class_counts().sum() == len(ds)
    image, label = ds[0]
    assert image.shape == info.image_shape
    assert label.dtype == torch.int64
    fp = ds.fingerprint
    assert (fp.dataset, fp.split, fp.n_images) == (name, split, len(ds))
    assert DataFingerprint.from_dict(json.loads(json.dumps(fp.to_dict()))) == fp


def test_digits_joins_the_interface():
    ds = load_dataset("digits", split=Split.TEST)
    images, labels = load_digits("test")
    assert torch.equal(ds.images, images)
    assert torch.equal(ds.labels, labels)
    assert len(ds) == 359
    assert ds.classes == tuple("0123456789")
    fp = ds.fingerprint
    assert fp.files == ()
    assert fp.source_package.startswith("scikit-learn==")
    assert fp.is_official is None
    assert load_dataset("digits", split="test").fingerprint == fp  # deterministic
    assert load_dataset("digits", split="train").fingerprint.images_sha256 != fp.images_sha256
    assert len(load_dataset("DIGITS", split=" Train ")) == 1438


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnsit'; valid: \['cifar10', .*"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match=r"Did you mean 'cifar10'\?"):
        load_dataset("cifar-10")
    with pytest.raises(TypeError, match="dataset name must be a str; got int"):
        load_dataset(10)


def test_split_is_checked():
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\]; got 'val'"):
        load_dataset("digits", split="val")
    with pytest.raises(TypeError, match="split must be a str or Split; got int"):
        load_dataset("digits", split=0)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_file_datasets_need_a_root(name):
    with pytest.raises(DatasetNotFoundError, match=r"pass root=DIR, the folder that holds"):
        load_dataset(name)


def test_root_must_be_an_existing_folder(tmp_path):
    with pytest.raises(
        DatasetNotFoundError, match=r"data root '.*/nope' for 'mnist' does not exist"
    ):
        load_dataset("mnist", root=tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetNotFoundError, match=r"is a file, not a folder"):
        load_dataset("mnist", root=tmp_path / "file")
    with pytest.raises(TypeError, match=r"root must be a str or os.PathLike folder; got int"):
        load_dataset("mnist", root=3)
    with pytest.raises(TypeError, match=r"download must be a bool; got str"):
        load_dataset("mnist", root=tmp_path, download="yes")
    assert issubclass(DatasetNotFoundError, DatasetError)
    assert issubclass(DatasetError, ValueError)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match=r"dataset 'mnist' is already registered"):
        register_dataset(
            "mnist", classes=("a",), image_shape=(1, 1, 1), needs_root=False, layout=""
        )(lambda **kw: None)
    with pytest.raises(ValueError, match=r"lower-case str without spaces; got 'My Data'"):
        register_dataset("My Data", classes=(), image_shape=(1, 1, 1), needs_root=False, layout="")


class _FakeTorchvision:
    """Stands in for a torchvision dataset class: records calls and writes the files."""

    def __init__(self, write, calls):
        self.write, self.calls = write, calls

    def __call__(self, root, *, train, download):
        self.calls.append((root, train, download))
        self.write(Path(root), train)


@pytest.mark.parametrize(
    ("name", "class_name"),
    [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"), ("cifar10", "CIFAR10")],
)
def test_download_uses_torchvision_then_our_reader(
    tmp_path, monkeypatch, write_mnist, write_cifar, name, class_name
):
    import torchvision.datasets

    def write(root: Path, train: bool) -> None:  # torchvision's layout, both splits
        for split in ("train", "test"):
            if class_name == "CIFAR10":
                write_cifar(root / "cifar-10-batches-py", split, n=2)
            else:
                write_mnist(root / class_name / "raw", split, n=4, gz=False)

    calls = []
    monkeypatch.setattr(torchvision.datasets, class_name, _FakeTorchvision(write, calls))
    root = tmp_path / "new" / "root"  # created on demand
    ds = _load(name, split="test", root=root, download=True)
    assert calls == [(str(root), False, True)]
    assert len(ds) in (2, 4)
    _load(name, split="train", root=root, download=True)  # files present: no second fetch
    assert len(calls) == 1


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(root, *, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(
        DatasetNotFoundError, match=r"could not fetch MNIST .*torchvision.datasets.MNIST"
    ) as info:
        load_dataset("mnist", root=tmp_path, download=True)
    assert "copy the files into the data root" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)

    def url_error(root, *, train, download):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", url_error)
    with pytest.raises(DatasetNotFoundError, match=r"CIFAR-10 .*URLError"):
        load_dataset("cifar10", root=tmp_path, download=True, split="test")


def _fingerprint(n: int) -> DataFingerprint:
    return DataFingerprint("x", "train", n, "0" * 64, "1" * 64)


def test_image_dataset_validates():
    images, labels = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
    ImageDataset("x", "train", images, labels, ("a", "b"), _fingerprint(2))
    with pytest.raises(TypeError, match="images must be a float32 tensor; got torch.float64"):
        ImageDataset("x", "train", images.double(), labels, ("a", "b"), _fingerprint(2))
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\); got \(2, 4, 4\)"):
        ImageDataset("x", "train", images[:, 0], labels, ("a", "b"), _fingerprint(2))
    with pytest.raises(TypeError, match="labels must be an int64 tensor; got torch.int32"):
        ImageDataset("x", "train", images, labels.int(), ("a", "b"), _fingerprint(2))
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(2,\)"):
        ImageDataset("x", "train", images, labels[:1], ("a", "b"), _fingerprint(2))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\) for 1 classes"):
        ImageDataset("x", "train", images, labels, ("a",), _fingerprint(2))
    with pytest.raises(ValueError, match="fingerprint counts 3 images; the tensor holds 2"):
        ImageDataset("x", "train", images, labels, ("a", "b"), _fingerprint(3))
    ds = ImageDataset("x", "train", images, labels, ["a", "b"], _fingerprint(2))
    assert ds.classes == ("a", "b")
    assert ds.image_shape == (1, 4, 4)
    assert ds.num_classes == 2
    assert np.array_equal(ds[1:][1].numpy(), [1])
