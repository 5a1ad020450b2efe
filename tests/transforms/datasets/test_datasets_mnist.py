"""MNIST / Fashion-MNIST: IDX files written in the exact format, gzipped or not."""

from __future__ import annotations

import gzip
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from geomrobust.transforms.datasets import (
    FASHION_MNIST_CLASSES,
    ChecksumWarning,
    DatasetFormatError,
    DatasetNotFoundError,
    _mnist,
    load_dataset,
)
from geomrobust.transforms.datasets._idx import parse_idx

RAW = Path("MNIST/raw")


def _load(name: str = "mnist", **kwargs):
    """Load, ignoring the checksum warning that every small test file gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)
        return load_dataset(name, **kwargs)


def _expected_images(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / np.float32(255))[:, None]


@pytest.mark.parametrize("gz", [True, False])
def test_parse_idx_round_trip(tmp_path, fmt, gz):
    labels = np.array([3, 0, 9, 9], dtype=np.uint8)
    data = fmt.idx_bytes(labels)
    assert data[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x04"
    out = parse_idx(gzip.compress(data) if gz else data, path=tmp_path / "f", magic=0x801)
    np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("layout", ["MNIST/raw", "raw", "."])
def test_loads_exact_values_in_every_layout(tmp_path, write_mnist, gz, layout):
    images, labels = write_mnist(tmp_path / layout, "train", n=7, gz=gz)
    ds = _load(split="train", root=tmp_path)
    assert ds.name == "mnist"
    assert ds.split == "train"
    assert len(ds) == 7
    assert ds.images.dtype == torch.float32
    assert ds.images.shape == (7, 1, 28, 28)
    assert ds.labels.dtype == torch.int64
    assert torch.equal(ds.images, _expected_images(images))
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == tuple("0123456789")
    suffix = ".gz" if gz else ""
    prefix = "" if layout == "." else f"{layout}/"
    assert [f.name for f in ds.fingerprint.files] == [
        f"{prefix}train-images-idx3-ubyte{suffix}",
        f"{prefix}train-labels-idx1-ubyte{suffix}",
    ]


def test_pixel_values_by_hand(tmp_path, fmt):
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    images[0, 0, 1] = 255  # row 0, column 1
    images[1, 27, 0] = 51  # last row, first column
    folder = tmp_path / RAW
    folder.mkdir(parents=True)
    (folder / "t10k-images-idx3-ubyte").write_bytes(fmt.idx_bytes(images))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(fmt.idx_bytes(np.array([4, 2], np.uint8)))
    ds = load_dataset("mnist", split="test", root=tmp_path)
    assert ds.images[0, 0, 0, 1] == 1.0
    assert ds.images[1, 0, 27, 0] == np.float32(0.2)
    assert ds.images.sum() == 1.0 + np.float32(0.2)
    assert ds.labels.tolist() == [4, 2]


def test_fashion_mnist_folder_and_classes(tmp_path, write_mnist):
    images, _ = write_mnist(tmp_path / "FashionMNIST/raw", "test", n=4)
    ds = _load("fashion-mnist", split="test", root=tmp_path)
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.classes[9] == "Ankle boot"
    assert torch.equal(ds.images, _expected_images(images))
    with pytest.raises(DatasetNotFoundError, match=r"MNIST 'test' split not found .*MNIST/raw"):
        load_dataset("mnist", split="test", root=tmp_path)


def test_gzip_is_preferred_and_recognised_by_content(tmp_path, write_mnist):
    folder = tmp_path / RAW
    gz_images, _ = write_mnist(folder, "train", n=3, gz=True, seed=1)
    write_mnist(folder, "train", n=2, gz=False, seed=2)
    ds = _load(split="train", root=tmp_path)
    assert len(ds) == 3
    assert torch.equal(ds.images, _expected_images(gz_images))
    # A ".gz" that is not compressed is read by its format, not its name.
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / f"{name}.gz").write_bytes((folder / name).read_bytes())
    assert len(_load(split="train", root=tmp_path)) == 2


def test_split_needs_only_its_own_files(tmp_path, write_mnist):
    write_mnist(tmp_path / RAW, "train", n=3)
    assert len(_load(split="train", root=tmp_path)) == 3
    with pytest.raises(DatasetNotFoundError, match=r"t10k-images-idx3-ubyte\.gz or t10k-images"):
        load_dataset("mnist", split="test", root=tmp_path)
    write_mnist(tmp_path / "only-test" / RAW, "test", n=2)
    assert len(_load(split="test", root=tmp_path / "only-test")) == 2
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        load_dataset("mnist", split="train", root=tmp_path / "only-test")


def test_missing_labels_file_is_named(tmp_path, write_mnist):
    write_mnist(tmp_path / RAW, "train", n=3)
    (tmp_path / RAW / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"incomplete .*missing train-labels-idx1"):
        load_dataset("mnist", split="train", root=tmp_path)


def _write_pair(tmp_path: Path, images: bytes, labels: bytes, *, gz: bool = False) -> Path:
    folder = tmp_path / RAW
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels)
    return folder


@pytest.fixture
def good(fmt):
    """Valid IDX bytes of 4 images and their labels ``[1, 2, 3, 4]``, not gzipped."""
    images = fmt.idx_bytes(fmt.random_pixels(4, (28, 28), seed=0))
    return images, fmt.idx_bytes(np.array([1, 2, 3, 4], np.uint8))


# (images, labels) from the valid pair (i, l) and the writers f.
MALFORMED = {
    "truncated-body": (
        lambda im, lb, f: (im[:-1], lb),
        r"images-idx3-ubyte' is truncated: .*3136 bytes",
    ),
    "truncated-header": (lambda im, lb, f: (im[:10], lb), r"too few for the 16-byte header"),
    "empty": (lambda im, lb, f: (b"", lb), r"holds 0 bytes, too few .* empty or truncated"),
    "trailing-bytes": (lambda im, lb, f: (im + b"\0", lb), r"1 bytes after the 4 × 28 × 28"),
    "labels-as-images": (
        lambda im, lb, f: (lb, lb),
        r"magic number 0x00000801, .*0x00000803.*swapped",
    ),
    "images-as-labels": (
        lambda im, lb, f: (im, im),
        r"magic number 0x00000803, .*0x00000801.*swapped",
    ),
    "not-idx": (
        lambda im, lb, f: (b"PK\x03\x04" + im[4:], lb),
        r"0x504B0304.*not an unsigned-byte IDX",
    ),
    "wrong-ndim": (
        lambda im, lb, f: (b"\x00\x00\x08\x02" + im[4:], lb),
        r"0x00000802.*header says 2 dimensions",
    ),
    "wrong-size": (
        lambda im, lb, f: (f.idx_bytes(f.random_pixels(4, (32, 32), seed=0)), lb),
        r"holds 32×32 images, expected 28×28",
    ),
    "count-mismatch": (
        lambda im, lb, f: (im, f.idx_bytes(np.array([1, 2, 3], np.uint8))),
        r"holds 4 images but .* holds 3 labels",
    ),
    "label-out-of-range": (
        lambda im, lb, f: (im, f.idx_bytes(np.array([1, 10, 3, 255], np.uint8))),
        r"2 label\(s\) outside 0..9, the first 10 at index 1",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_raise_naming_the_file(tmp_path, fmt, good, case):
    make, match = MALFORMED[case]
    _write_pair(tmp_path, *make(*good, fmt))
    with pytest.raises(DatasetFormatError, match=match) as info:
        load_dataset("mnist", split="train", root=tmp_path)
    assert info.value.path is not None
    assert info.value.path.parent == tmp_path / RAW
    assert str(info.value.path) in str(info.value)


def test_truncated_and_corrupt_gzip(tmp_path, good):
    images, labels = good
    packed = gzip.compress(images)
    _write_pair(tmp_path, packed[: len(packed) // 2], gzip.compress(labels), gz=True)
    with pytest.raises(DatasetFormatError, match=r"gzip file that ends early .* truncated"):
        _load(split="train", root=tmp_path)
    corrupt = packed[:-8] + b"\0" * 8  # wrong CRC and length trailer
    _write_pair(tmp_path, corrupt, gzip.compress(labels), gz=True)
    with pytest.raises(DatasetFormatError, match=r"cannot be decompressed"):
        _load(split="train", root=tmp_path)


def test_checksum_mismatch_warns_and_loads(tmp_path, write_mnist):
    write_mnist(tmp_path / RAW, "train", n=3, gz=True)
    with pytest.warns(ChecksumWarning, match=r"has md5 [0-9a-f]{32}, not the official") as record:
        ds = load_dataset("mnist", split="train", root=tmp_path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert len(ds) == 3
    assert "train-images-idx3-ubyte.gz' (MNIST train images)" in messages[0]
    assert "official f68b3c2dcbeaaa9fbdd348bbdeb94873: its format is valid" in messages[0]
    assert "official d53e105ee54ea40749a09fcbcd1e9432" in messages[1]
    assert all(w.filename == __file__ for w in record)  # points at the caller
    assert [f.official_md5_match for f in ds.fingerprint.files] == [False, False]
    assert ds.fingerprint.is_official is False


def test_checksum_match_is_silent(tmp_path, write_mnist, monkeypatch):
    folder = tmp_path / RAW
    write_mnist(folder, "test", n=3, gz=True)
    for path in folder.iterdir():
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        monkeypatch.setitem(_mnist._MNIST.md5, path.name, md5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("mnist", split="test", root=tmp_path)
    assert ds.fingerprint.is_official is True


def test_uncompressed_files_have_no_official_checksum(tmp_path, write_mnist):
    write_mnist(tmp_path / RAW, "train", n=3, gz=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset("mnist", split="train", root=tmp_path)
    assert [f.official_md5_match for f in ds.fingerprint.files] == [None, None]
    assert ds.fingerprint.is_official is None


def test_malformed_file_raises_before_any_checksum_warning(tmp_path, good):
    images, labels = good
    _write_pair(tmp_path, gzip.compress(images[:-5]), gzip.compress(labels), gz=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChecksumWarning)
        with pytest.raises(DatasetFormatError, match="truncated"):
            load_dataset("mnist", split="train", root=tmp_path)


def test_recompressed_file_keeps_the_content_fingerprint(tmp_path, write_mnist):
    # Like Debian's Fashion-MNIST: other .gz bytes, same IDX content.
    write_mnist(tmp_path / "a" / RAW, "train", n=4, gz=True)
    folder = tmp_path / "b" / RAW
    folder.mkdir(parents=True)
    for path in (tmp_path / "a" / RAW).iterdir():
        content = gzip.decompress(path.read_bytes())
        (folder / path.name).write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    a = _load(split="train", root=tmp_path / "a").fingerprint
    b = _load(split="train", root=tmp_path / "b").fingerprint
    assert a.files[0].sha256 != b.files[0].sha256
    assert (a.images_sha256, a.labels_sha256) == (b.images_sha256, b.labels_sha256)


def test_official_md5s_match_torchvision():
    import torchvision.datasets as tvd

    assert dict(tvd.MNIST.resources) == _mnist._MNIST.md5
    assert dict(tvd.FashionMNIST.resources) == _mnist._FASHION.md5
    assert tuple(tvd.FashionMNIST.classes) == FASHION_MNIST_CLASSES
