"""CIFAR-10: pickle batches written in the exact format, and the restricted unpickler."""

from __future__ import annotations

import codecs
import hashlib
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from geomrobust.transforms.datasets import (
    CIFAR10_CLASSES,
    ChecksumWarning,
    DatasetFormatError,
    DatasetNotFoundError,
    UnsafePickleError,
    _cifar,
    load_dataset,
    safe_unpickle,
)

FOLDER = Path("cifar-10-batches-py")


def _load(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)
        return load_dataset("cifar10", **kwargs)


def _expected(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("protocol", [None, 2, 4, 5], ids=["py2", "p2", "p4", "p5"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_loads_exact_values(tmp_path, write_cifar, protocol, split):
    data, labels = write_cifar(tmp_path / FOLDER, split, n=3, protocol=protocol)
    ds = _load(split=split, root=tmp_path)
    n = 15 if split == "train" else 3
    assert ds.images.shape == (n, 3, 32, 32)
    assert ds.images.dtype == torch.float32
    assert torch.equal(ds.images, _expected(data))
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == CIFAR10_CLASSES
    names = [f.name for f in ds.fingerprint.files]
    batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    assert names == [f"cifar-10-batches-py/{b}" for b in [*batches, "batches.meta"]]


def test_channel_and_pixel_order_by_hand(tmp_path, fmt):
    row = np.zeros(3072, dtype=np.uint8)
    row[:1024], row[1024:2048], row[2048:] = 10, 20, 30  # planes R, G, B
    row[0 * 1024 + 1 * 32 + 2] = 200  # red, y=1, x=2
    row[2 * 1024 + 31 * 32 + 0] = 255  # blue, y=31, x=0
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(fmt.py2_pickle(fmt.cifar_batch(row[None], [7])))
    ds = _load(split="test", root=tmp_path)
    image = ds.images[0] * 255
    assert image[0, 1, 2] == 200
    assert image[2, 31, 0] == 255
    assert image[0, 0, 0] == 10
    assert image[1, 5, 5] == 20
    assert image[2, 0, 0] == 30
    assert ds.labels.tolist() == [7]
    assert ds.classes[7] == "horse"


def test_root_may_be_the_batches_folder(tmp_path, write_cifar):
    data, _ = write_cifar(tmp_path, "test", n=2)
    assert torch.equal(_load(split="test", root=tmp_path).images, _expected(data))


def test_class_names_from_meta_or_official(tmp_path, write_cifar, fmt):
    folder = tmp_path / FOLDER
    write_cifar(folder, "test", n=2, meta=False)
    assert _load(split="test", root=tmp_path).classes == CIFAR10_CLASSES
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(fmt.py2_pickle({"label_names": names}))
    assert _load(split="test", root=tmp_path).classes == tuple(names)
    (folder / "batches.meta").write_bytes(fmt.py2_pickle({"label_names": names[:9]}))
    with pytest.raises(DatasetFormatError, match=r"batches.meta': 'label_names' must be .*10"):
        _load(split="test", root=tmp_path)


def test_official_meta_matches_its_checksum(tmp_path, write_cifar):
    write_cifar(tmp_path / FOLDER, "test", n=2, meta=True)
    with pytest.warns(ChecksumWarning) as record:
        ds = load_dataset("cifar10", split="test", root=tmp_path)
    assert len(record) == 1
    assert "test_batch" in str(record[0].message)
    assert [f.official_md5_match for f in ds.fingerprint.files] == [False, True]
    assert ds.fingerprint.is_official is False


def test_split_needs_only_its_own_files(tmp_path, write_cifar):
    write_cifar(tmp_path / FOLDER, "train", n=2)
    assert len(_load(split="train", root=tmp_path)) == 10
    with pytest.raises(DatasetNotFoundError, match=r"CIFAR-10 'test' split not found.*test_batch"):
        load_dataset("cifar10", split="test", root=tmp_path)
    (tmp_path / FOLDER / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"incomplete .*missing data_batch_3\. Put"):
        load_dataset("cifar10", split="train", root=tmp_path)


def _write_test_batch(tmp_path: Path, raw: bytes) -> None:
    folder = tmp_path / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_batch").write_bytes(raw)


# (batch dict or raw bytes) from the writers f and valid pixels d (2, 3072).
MALFORMED = {
    "truncated": (lambda f, d: f.py2_pickle(f.cifar_batch(d, [1, 2]))[:-100], "not a readable"),
    "empty": (lambda f, d: b"", r"not a readable pickle \(EOFError"),
    "not-a-dict": (lambda f, d: pickle.dumps([1, 2]), r"a pickled list, expected a dict"),
    "no-labels": (lambda f, d: {"data": d}, r"lacks key\(s\) \['labels'\]"),
    "cifar-100": (
        lambda f, d: {"data": d, "fine_labels": [1, 2], "coarse_labels": [0, 0]},
        r"'fine_labels', not 'labels': it is a CIFAR-100 file",
    ),
    "float-data": (
        lambda f, d: {"data": d.astype(np.float32), "labels": [1, 2]},
        r"'data' must be a uint8 array of shape \(N, 3072\); got a float32 array",
    ),
    "list-data": (lambda f, d: {"data": [1, 2], "labels": [1, 2]}, r"got a list"),
    "wrong-width": (
        lambda f, d: {"data": d[:, :3071], "labels": [1, 2]},
        r"3072 = 3 × 32 × 32 columns; got shape \(2, 3071\)",
    ),
    "count-mismatch": (
        lambda f, d: f.cifar_batch(d, [1, 2, 3]),
        r"holds 2 images but 3 labels",
    ),
    "label-out-of-range": (
        lambda f, d: f.cifar_batch(d, [1, 10]),
        r"1 label\(s\) outside 0..9, the first 10 at index 1",
    ),
    "negative-label": (lambda f, d: {"data": d, "labels": [-1, 0]}, r"the first -1 at index 0"),
    "float-labels": (lambda f, d: {"data": d, "labels": [1.0, 2.0]}, r"flat list of ints"),
    "labels-not-list": (lambda f, d: {"data": d, "labels": "12"}, r"got a str"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_batches_raise_naming_the_file(tmp_path, fmt, case):
    make, match = MALFORMED[case]
    made = make(fmt, fmt.random_pixels(2, (3072,), seed=0))
    _write_test_batch(tmp_path, made if isinstance(made, bytes) else pickle.dumps(made, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChecksumWarning)  # errors come before warnings
        with pytest.raises(DatasetFormatError, match=match) as info:
            load_dataset("cifar10", split="test", root=tmp_path)
    assert info.value.path == tmp_path / FOLDER / "test_batch"
    assert "test_batch'" in str(info.value)


class _Payload:
    """Pickles as a call of ``func(*args)``: what a malicious file would do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "io.open": _Payload(open, str(marker), "w"),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": _Payload(eval, f"open({str(marker)!r}, 'w').close()"),
        "posix.system": _Payload(__import__("os").system, f"touch {marker}"),
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("name", ["io.open", "builtins.exec", "builtins.eval", "posix.system"])
def test_restricted_unpickler_refuses_code(tmp_path, fmt, name, protocol):
    # The control: plain pickle runs the payload and creates the marker.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_payloads(control)[name], protocol=2))
    assert control.exists()
    # The same payload inside a well-formed batch is refused and runs nothing.
    marker = tmp_path / "marker"
    batch = fmt.cifar_batch(fmt.random_pixels(1, (3072,), seed=0), [1])
    batch["filenames"] = [_payloads(marker)[name]]
    _write_test_batch(tmp_path, pickle.dumps(batch, protocol=protocol))
    if protocol == 2:  # Python 3 writes Python 2 names for protocols < 3
        name = name.replace("builtins.", "__builtin__.")
    with pytest.raises(UnsafePickleError, match=rf"asks for {name}; .*nothing in it was run"):
        load_dataset("cifar10", split="test", root=tmp_path)
    assert not marker.exists()


def test_safe_unpickle_error_names_the_global(tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(UnsafePickleError) as info:
        safe_unpickle(pickle.dumps(_Payload(open, str(marker), "w"), 4), path=tmp_path / "f")
    assert info.value.global_name == "io.open"
    assert info.value.path == tmp_path / "f"
    assert isinstance(info.value, DatasetFormatError)
    assert not marker.exists()


def test_codecs_encode_is_latin1_only(tmp_path):
    ok = pickle.dumps(b"\x00\xff", protocol=2)  # bytes pickle as _codecs.encode(str, latin1)
    assert b"_codecs\nencode" in ok
    assert safe_unpickle(ok, path=tmp_path) == b"\x00\xff"
    bad = pickle.dumps(_Payload(codecs.encode, "abc", "rot13"), protocol=2)
    with pytest.raises(DatasetFormatError, match="_codecs.encode to 'rot13' is not allowed"):
        safe_unpickle(bad, path=tmp_path)


def test_persistent_ids_are_refused(tmp_path):
    raw = b"\x80\x02X\x01\x00\x00\x00aQ."  # PERSID via BINPERSID
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        safe_unpickle(raw, path=tmp_path)


def test_official_md5s_match_torchvision(fmt):
    import torchvision.datasets as tvd

    listed = [*tvd.CIFAR10.train_list, *tvd.CIFAR10.test_list]
    expected = {name: md5 for name, md5 in listed}
    expected[tvd.CIFAR10.meta["filename"]] = tvd.CIFAR10.meta["md5"]
    assert expected == _cifar._MD5
    assert hashlib.md5(fmt.official_cifar_meta).hexdigest() == _cifar._MD5["batches.meta"]
