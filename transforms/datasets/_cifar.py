"""CIFAR-10, read from the python pickle batches in torchvision's layout.

``ROOT/cifar-10-batches-py/`` or ``ROOT`` itself holds ``data_batch_1`` … ``data_batch_5``
(train), ``test_batch`` (test) and, optionally, ``batches.meta`` (the class names). A batch
is a pickled dict: ``data``, a ``(N, 3072)`` uint8 array whose rows are 1024 red, 1024 green,
then 1024 blue values, each a row-major 32×32 plane, and ``labels``, ``N`` ints in 0..9.
Other keys (``batch_label``, ``filenames``) are ignored.

Unpickling runs code named by the file, so the files are read with a restricted unpickler
that only rebuilds NumPy arrays (see :func:`safe_unpickle`).
"""

from __future__ import annotations

import codecs
import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ._dataset import ImageDataset, make_dataset
from ._errors import DatasetError, DatasetFormatError, UnsafePickleError
from ._files import ReadFile, find_split_files, read_file
from ._registry import register_dataset
from ._torchvision import download_with_torchvision

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "safe_unpickle"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_FOLDER = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = ("test_batch",)
_META = "batches.meta"
# The official md5s, as in torchvision's CIFAR10.train_list / test_list / meta.
_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
_PIXELS = 3 * 32 * 32
_REDOWNLOAD = "download it again, or pass download=True to fetch it with torchvision"


def _latin1_encoder() -> Any:
    """A fresh ``_codecs.encode`` limited to latin-1: how protocol-2 pickles store ``bytes``.

    Fresh per lookup, so a pickle that sets attributes on it (``BUILD``) changes nothing
    outside that one load.
    """

    def encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if encoding not in ("latin1", "latin-1", "latin_1"):
            raise pickle.UnpicklingError(f"_codecs.encode to {encoding!r} is not allowed")
        return codecs.encode(obj, "latin-1", errors)

    return encode


def _numpy_core(submodule: str, name: str) -> Any:
    # NumPy 2 moved numpy.core to numpy._core; old pickles name the former, new ones the latter.
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"this NumPy has no {submodule}.{name}")


# The globals a pickled NumPy array needs (protocols 2-5, NumPy 1 and 2), and nothing else.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_core("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_core("multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core("numeric", "_frombuffer"),
    ("_codecs", "encode"): _latin1_encoder,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, *, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"{str(self._path)!r} is a pickle that asks for {module}.{name}; a CIFAR-10 "
                "batch only holds NumPy arrays, lists, numbers and strings, so it was refused "
                "and nothing in it was run. The file is not a CIFAR-10 batch or has been "
                f"tampered with; {_REDOWNLOAD}",
                path=self._path,
                global_name=f"{module}.{name}",
            )
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{str(self._path)!r} is a pickle with persistent ids, which a CIFAR-10 batch "
            f"never has; it was refused. {_REDOWNLOAD}",
            path=self._path,
            global_name="persistent_load",
        )


def safe_unpickle(data: bytes, *, path: Path) -> Any:
    """Unpickle ``data`` as Python 2 pickles are read (``encoding="latin1"``), allowing only
    the globals that rebuild NumPy arrays.

    Args:
        data: The pickle's bytes.
        path: The file, for messages.

    Raises:
        UnsafePickleError: the pickle names any other global (``os.system``, ``builtins.eval``,
            …); nothing it names is called.
        DatasetFormatError: not a readable pickle (truncated, say).
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path=path).load()
    except DatasetError:
        raise
    except Exception as exc:  # a damaged pickle can fail in many ways; all mean "bad file"
        raise DatasetFormatError(
            f"{str(path)!r} is not a readable pickle ({type(exc).__name__}: {exc}): it is "
            f"truncated or not a CIFAR-10 file; {_REDOWNLOAD}",
            path=path,
        ) from exc


def _as_str_keys(obj: Any, *, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DatasetFormatError(
            f"{str(path)!r} holds a pickled {type(obj).__name__}, expected a dict ({what})",
            path=path,
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def parse_batch(obj: Any, *, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Check an unpickled batch and return ``(pixels (N, 3, 32, 32) uint8, labels (N,))``.

    Raises:
        DatasetFormatError: a missing key, a wrong type or shape, or a label outside 0..9.
    """
    batch = _as_str_keys(obj, path=path, what="with 'data' and 'labels'")
    if "labels" not in batch and "fine_labels" in batch:
        raise DatasetFormatError(
            f"{str(path)!r} has 'fine_labels', not 'labels': it is a CIFAR-100 file, not CIFAR-10",
            path=path,
        )
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DatasetFormatError(
            f"{str(path)!r} lacks key(s) {missing}; a CIFAR-10 batch holds 'data' and "
            f"'labels', this one {sorted(map(str, batch))}",
            path=path,
        )
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        found = (
            f"a {data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else f"a {type(data).__name__}"
        )
        raise DatasetFormatError(
            f"{str(path)!r}: 'data' must be a uint8 array of shape (N, {_PIXELS}); got {found}",
            path=path,
        )
    if data.shape[1] != _PIXELS:
        raise DatasetFormatError(
            f"{str(path)!r}: 'data' must have {_PIXELS} = 3 × 32 × 32 columns; got shape "
            f"{data.shape}: is it from another dataset?",
            path=path,
        )
    labels = batch["labels"]
    if not isinstance(labels, list | tuple | np.ndarray):
        raise DatasetFormatError(
            f"{str(path)!r}: 'labels' must be a list of ints; got a {type(labels).__name__}",
            path=path,
        )
    array = np.asarray(labels)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise DatasetFormatError(
            f"{str(path)!r}: 'labels' must be a flat list of ints; got {array.dtype} values "
            f"of shape {array.shape}",
            path=path,
        )
    if array.shape[0] != data.shape[0]:
        raise DatasetFormatError(
            f"{str(path)!r} holds {data.shape[0]} images but {array.shape[0]} labels; they "
            f"must agree; {_REDOWNLOAD}",
            path=path,
        )
    bad = np.flatnonzero((array < 0) | (array >= len(CIFAR10_CLASSES)))
    if bad.size:
        raise DatasetFormatError(
            f"{str(path)!r} has {bad.size} label(s) outside 0..9, the first {int(array[bad[0]])} "
            f"at index {int(bad[0])}: it is corrupted or from another dataset; {_REDOWNLOAD}",
            path=path,
        )
    return data.reshape(-1, 3, 32, 32), array.astype(np.int64)


def parse_meta(obj: Any, *, path: Path) -> tuple[str, ...]:
    """The ``label_names`` of an unpickled ``batches.meta``: 10 class names.

    Raises:
        DatasetFormatError: not a dict, or ``label_names`` missing or not 10 strings.
    """
    meta = _as_str_keys(obj, path=path, what="with 'label_names'")
    names = meta.get("label_names")
    if isinstance(names, list | tuple):
        names = [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
    if (
        not isinstance(names, list)
        or len(names) != len(CIFAR10_CLASSES)
        or not all(isinstance(n, str) and n for n in names)
    ):
        raise DatasetFormatError(
            f"{str(path)!r}: 'label_names' must be a list of 10 class names; got {names!r}. "
            "Delete the file to use the official names, or download it again.",
            path=path,
        )
    return tuple(names)


def _find(*, split: str, root: Path) -> list[Path]:
    return find_split_files(
        root,
        subdirs=(_FOLDER, "."),
        files=[(name,) for name in (_TRAIN if split == "train" else _TEST)],
        dataset="CIFAR-10",
        split=split,
        fix=(
            f"Put the python-version batches in {str(root / _FOLDER)!r}, or pass download=True "
            "to fetch them with torchvision (needs internet)."
        ),
    )


MAX_ROWS_ENV = "GEOMROBUST_CIFAR_MAX_ROWS"
"""Environment variable that raises the row limit of one CIFAR batch file (default 10,000,
the size of an official batch)."""
_DEFAULT_MAX_ROWS = 10_000
_BYTES_PER_ROW = 3_200  # 3,072 pixels, a label and a file name (official: ~3,104)
_PICKLE_SLACK = 1 << 20


def _max_rows() -> int:
    raw = os.environ.get(MAX_ROWS_ENV)
    if raw is None:
        return _DEFAULT_MAX_ROWS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise DatasetError(f"{MAX_ROWS_ENV} must be a positive integer; got {raw!r}")
    return value


def _too_many(path: Path, found: str, max_rows: int) -> str:
    return (
        f"{str(path)!r} holds {found}, more than the {max_rows:,} rows a CIFAR-10 batch may "
        f"have here (an official batch has 10,000); if the file is yours and meant to be that "
        f"large, set {MAX_ROWS_ENV} to a larger limit"
    )


def _check_batch_size(path: Path, max_rows: int) -> None:
    """Refuse a batch file too large for ``max_rows`` rows before reading it."""
    size = path.stat().st_size
    if size > max_rows * _BYTES_PER_ROW + _PICKLE_SLACK:
        rows = f"{size:,} bytes (room for about {size // _BYTES_PER_ROW:,} rows)"
        raise DatasetFormatError(_too_many(path, rows, max_rows), path=path)


@register_dataset(
    "cifar10",
    classes=CIFAR10_CLASSES,
    image_shape=(3, 32, 32),
    needs_root=True,
    layout=f"{_FOLDER}/data_batch_1..5, test_batch (and batches.meta)",
)
def load_cifar10(*, split: str, root: Path, download: bool = False) -> ImageDataset:
    """CIFAR-10: ``(N, 3, 32, 32)`` float32 RGB in [0, 1].

    Class names come from ``batches.meta`` when it sits beside the batches, else they are
    the official ones.

    Args:
        split: ``"train"`` (``data_batch_1..5``) or ``"test"`` (``test_batch``).
        root: An existing data root (see the module docstring for the layouts).
        download: Fetch the files with torchvision first if the split's are missing.
    """
    if download:
        download_with_torchvision(
            "CIFAR10",
            root=root,
            split=split,
            title="CIFAR-10",
            have=lambda: _find(split=split, root=root),
        )
    paths = _find(split=split, root=root)
    reads: list[ReadFile] = []
    pixels, labels = [], []
    max_rows = _max_rows()
    for path in paths:
        _check_batch_size(path, max_rows)
        read = read_file(
            path, root=root, official_md5=_MD5[path.name], what=f"CIFAR-10 {split} batch"
        )
        batch_pixels, batch_labels = parse_batch(safe_unpickle(read.data, path=path), path=path)
        if len(batch_labels) > max_rows:
            raise DatasetFormatError(
                _too_many(path, f"{len(batch_labels):,} rows", max_rows), path=path
            )
        reads.append(read)
        pixels.append(batch_pixels)
        labels.append(batch_labels)
    classes = CIFAR10_CLASSES
    meta_path = paths[0].parent / _META
    if meta_path.is_file():
        read = read_file(meta_path, root=root, official_md5=_MD5[_META], what="CIFAR-10 meta")
        classes = parse_meta(safe_unpickle(read.data, path=meta_path), path=meta_path)
        reads.append(read)
    for read in reads:
        read.warn_if_unofficial()
    return make_dataset(
        name="cifar10",
        split=split,
        pixels=np.concatenate(pixels),
        labels=np.concatenate(labels),
        classes=classes,
        files=tuple(read.digest for read in reads),
    )
