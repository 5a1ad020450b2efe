"""Fingerprints: what data a result was computed on, in a JSON-ready record.

A :class:`DataFingerprint` names the dataset and split, counts the images, and lists every
file read with its sha256. It also hashes the decoded pixels and labels, so two copies of
the same data compare equal even when their files differ (a re-compressed ``.gz``, say),
and the embedded ``digits`` data, which has no files, is identified too.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataFingerprint", "FileDigest", "array_sha256"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order, little-endian (dtype and shape not included).

    Args:
        array: Any NumPy array; pixels are hashed as ``uint8``, labels as ``int64``.
    """
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return hashlib.sha256(arr.tobytes()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(value: Any, *, name: str) -> None:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{name} must be 64 lowercase hex digits (a sha256); got {value!r}")


def _check_keys(data: Any, *, cls: str, required: set[str], optional: set[str]) -> None:
    if not isinstance(data, dict):
        raise TypeError(f"{cls}.from_dict expects a dict; got {type(data).__name__}")
    missing = required - set(data)
    unknown = set(data) - required - optional
    if missing or unknown:
        raise ValueError(
            f"{cls}.from_dict: missing key(s) {sorted(missing)}, unknown key(s) "
            f"{sorted(unknown)}; expected {sorted(required)} and optionally {sorted(optional)}"
        )


@dataclass(frozen=True)
class FileDigest:
    """One file that was read.

    Attributes:
        name: Path relative to the data root, with ``/`` separators
            (e.g. ``"MNIST/raw/train-labels-idx1-ubyte.gz"``).
        sha256: sha256 of the file's bytes as stored (compressed if it is a ``.gz``).
        size_bytes: The file's size as stored.
        official_md5_match: Whether the file's md5 equals the official release's (the values
            torchvision checks); ``None`` where no official checksum is known, as for
            un-gzipped IDX files.
    """

    name: str
    sha256: str
    size_bytes: int
    official_md5_match: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"FileDigest.name must be a non-empty str; got {self.name!r}")
        _check_sha256(self.sha256, name="FileDigest.sha256")
        if isinstance(self.size_bytes, bool) or not isinstance(self.size_bytes, int):
            raise TypeError(f"FileDigest.size_bytes must be an int; got {self.size_bytes!r}")
        if self.size_bytes < 0:
            raise ValueError(f"FileDigest.size_bytes must be >= 0; got {self.size_bytes}")
        if self.official_md5_match not in (True, False, None):
            raise TypeError(
                "FileDigest.official_md5_match must be True, False or None; "
                f"got {self.official_md5_match!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "official_md5_match": self.official_md5_match,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileDigest:
        """Inverse of :meth:`to_dict`."""
        _check_keys(
            data,
            cls="FileDigest",
            required={"name", "sha256", "size_bytes"},
            optional={"official_md5_match"},
        )
        return cls(data["name"], data["sha256"], data["size_bytes"], data.get("official_md5_match"))


@dataclass(frozen=True)
class DataFingerprint:
    """The identity of a loaded split, to be stored with every result.

    Attributes:
        dataset: Registered dataset name, e.g. ``"mnist"``.
        split: ``"train"`` or ``"test"``.
        n_images: Number of images loaded.
        images_sha256: :func:`array_sha256` of the decoded pixels as ``uint8`` ``(N, C, H, W)``
            before conversion to float (for ``digits``: its 8×8 source pixels, values 0–16).
        labels_sha256: :func:`array_sha256` of the labels as ``int64`` ``(N,)``.
        files: The files read, in reading order; empty for embedded data.
        source_package: For data bundled in a package, ``"name==version"``
            (``digits``: ``"scikit-learn==1.5.2"``, say); ``None`` for files.
    """

    dataset: str
    split: str
    n_images: int
    images_sha256: str
    labels_sha256: str
    files: tuple[FileDigest, ...] = ()
    source_package: str | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"DataFingerprint.{name} must be a non-empty str; got {value!r}")
        if isinstance(self.n_images, bool) or not isinstance(self.n_images, int):
            raise TypeError(f"DataFingerprint.n_images must be an int; got {self.n_images!r}")
        if self.n_images < 0:
            raise ValueError(f"DataFingerprint.n_images must be >= 0; got {self.n_images}")
        _check_sha256(self.images_sha256, name="DataFingerprint.images_sha256")
        _check_sha256(self.labels_sha256, name="DataFingerprint.labels_sha256")
        files = tuple(self.files)
        if not all(isinstance(f, FileDigest) for f in files):
            raise TypeError("DataFingerprint.files must hold FileDigest objects")
        object.__setattr__(self, "files", files)
        if self.source_package is not None and not isinstance(self.source_package, str):
            raise TypeError(
                "DataFingerprint.source_package must be a str or None; "
                f"got {type(self.source_package).__name__}"
            )

    @property
    def is_official(self) -> bool | None:
        """Whether every file matched its official checksum; ``None`` if any is unknown."""
        matches = [f.official_md5_match for f in self.files]
        if not matches or None in matches:
            return None
        return all(matches)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys (``files`` as a list of dicts)."""
        return {
            "dataset": self.dataset,
            "split": self.split,
            "n_images": self.n_images,
            "images_sha256": self.images_sha256,
            "labels_sha256": self.labels_sha256,
            "files": [f.to_dict() for f in self.files],
            "source_package": self.source_package,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataFingerprint:
        """Inverse of :meth:`to_dict`."""
        _check_keys(
            data,
            cls="DataFingerprint",
            required={"dataset", "split", "n_images", "images_sha256", "labels_sha256"},
            optional={"files", "source_package"},
        )
        files = data.get("files", [])
        if not isinstance(files, list | tuple):
            raise TypeError(
                f"DataFingerprint.from_dict: 'files' must be a list; got {type(files).__name__}"
            )
        return cls(
            dataset=data["dataset"],
            split=data["split"],
            n_images=data["n_images"],
            images_sha256=data["images_sha256"],
            labels_sha256=data["labels_sha256"],
            files=tuple(FileDigest.from_dict(f) for f in files),
            source_package=data.get("source_package"),
        )
