"""Writers of small dataset files in the exact on-disk formats, shared by the dataset tests.

* IDX: big-endian magic ``0x00000803`` / ``0x00000801``, big-endian uint32 dimensions,
  then uint8 data; optionally gzipped.
* CIFAR-10: the original batches are Python 2 pickles (protocol 2) whose strings are
  ``BINSTRING`` byte strings and whose arrays are rebuilt with
  ``numpy.core.multiarray._reconstruct``; :func:`py2_pickle` writes exactly those opcodes
  (re-emitting the shared ``data_batch_1`` from its decoded contents gives it back byte for
  byte; ``test_datasets_shared.py`` checks that).

Test modules get these through the ``fmt`` fixture, never ``import conftest``: the name
``conftest`` is shared with ``tests/conftest.py`` and resolves differently by import mode.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

# The official CIFAR-10 batches.meta, byte for byte (158 bytes, md5
# 5ff9c542aee3614f3951f8cda6e48888): `open("cifar-10-batches-py/batches.meta", "rb").read()`.
OFFICIAL_CIFAR_META = (
    b"\x80\x02}q\x01(U\x13num_cases_per_batchq\x02M\x10'U\x0blabel_namesq\x03]q\x04(U\x08"
    b"airplaneq\x05U\nautomobileq\x06U\x04birdq\x07U\x03catq\x08U\x04deerq\tU\x03dogq\nU\x04"
    b"frogq\x0bU\x05horseq\x0cU\x04shipq\rU\x05truckq\x0eeU\x07num_visq\x0fM\x00\x0cu."
)


def idx_bytes(array: np.ndarray, *, magic: int | None = None) -> bytes:
    """An IDX file: magic (default ``0x0800 | ndim``), dimensions, then the uint8 data."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | arr.ndim if magic is None else magic
    dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return magic.to_bytes(4, "big") + dims + arr.tobytes()


def _py2_value(value: object) -> bytes:
    if isinstance(value, bool | None):
        raise TypeError("not needed for CIFAR files")
    if isinstance(value, int):
        if 0 <= value < 256:
            return b"K" + bytes([value])
        if 0 <= value < 65536:
            return b"M" + struct.pack("<H", value)
        return b"J" + struct.pack("<i", value)
    if isinstance(value, str | bytes):
        raw = value.encode("latin1") if isinstance(value, str) else value
        if len(raw) < 256:
            return b"U" + bytes([len(raw)]) + raw
        return b"T" + struct.pack("<I", len(raw)) + raw
    if isinstance(value, list):
        return b"](" + b"".join(_py2_value(v) for v in value) + b"e"
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim != 2:
            raise TypeError("only 2-D uint8 arrays, as in CIFAR batches")
        shape = _py2_value(value.shape[0]) + _py2_value(value.shape[1]) + b"\x86"
        minus_one = b"J" + struct.pack("<i", -1)
        dtype = b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNN" + minus_one * 2
        dtype += b"K\x00tb"
        return (
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            + b"(K\x01"
            + shape
            + dtype
            + b"\x89"
            + _py2_value(np.ascontiguousarray(value).tobytes())
            + b"tb"
        )
    raise TypeError(f"cannot write {type(value).__name__}")


def py2_pickle(obj: dict[str, object]) -> bytes:
    """A dict pickled the way Python 2's cPickle wrote the CIFAR-10 batches (protocol 2)."""
    items = b"".join(_py2_value(k) + _py2_value(v) for k, v in obj.items())
    return b"\x80\x02}(" + items + b"u."


def cifar_batch(data: np.ndarray, labels: list[int], **extra: object) -> dict[str, object]:
    """A batch dict as in the shared files: ``batch_label``, ``labels``, ``data``."""
    return {"batch_label": "testing batch 1 of 1", "labels": list(labels), "data": data, **extra}


def random_pixels(n: int, shape: tuple[int, ...], *, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.fixture
def fmt() -> SimpleNamespace:
    """The format writers of this module: ``fmt.idx_bytes``, ``fmt.py2_pickle``, …"""
    return SimpleNamespace(
        idx_bytes=idx_bytes,
        py2_pickle=py2_pickle,
        cifar_batch=cifar_batch,
        random_pixels=random_pixels,
        official_cifar_meta=OFFICIAL_CIFAR_META,
    )


MnistWriter = Callable[..., tuple[np.ndarray, np.ndarray]]
CifarWriter = Callable[..., tuple[np.ndarray, np.ndarray]]


@pytest.fixture
def write_mnist() -> MnistWriter:
    """``write(folder, split, n=..., gz=..., seed=...) -> (images (N, 28, 28), labels)``."""

    def write(
        folder: Path, split: str = "train", *, n: int = 5, gz: bool = True, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        prefix = {"train": "train", "test": "t10k"}[split]
        images = random_pixels(n, (28, 28), seed=seed)
        labels = np.arange(n, dtype=np.uint8) % 10
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            data = idx_bytes(arr)
            if gz:
                (folder / f"{prefix}-{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / f"{prefix}-{name}").write_bytes(data)
        return images, labels

    return write


@pytest.fixture
def write_cifar() -> CifarWriter:
    """``write(folder, split, n=..., protocol=..., meta=...) -> (data (N, 3072), labels)``.

    ``protocol=None`` writes Python 2 style pickles (like the real files); an int uses
    ``pickle.dumps`` with that protocol. ``meta=True`` adds the official ``batches.meta``.
    """

    def write(
        folder: Path,
        split: str = "train",
        *,
        n: int = 3,
        protocol: int | None = None,
        meta: bool = True,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        folder.mkdir(parents=True, exist_ok=True)
        all_data, all_labels = [], []
        for k, name in enumerate(names):
            data = random_pixels(n, (3072,), seed=seed + k)
            labels = [(k + i) % 10 for i in range(n)]
            batch = cifar_batch(data, labels)
            raw = py2_pickle(batch) if protocol is None else pickle.dumps(batch, protocol)
            (folder / name).write_bytes(raw)
            all_data.append(data)
            all_labels.extend(labels)
        if meta:
            (folder / "batches.meta").write_bytes(OFFICIAL_CIFAR_META)
        return np.concatenate(all_data), np.array(all_labels, dtype=np.int64)

    return write
