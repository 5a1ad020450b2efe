"""The dataset registry and the one entry point, :func:`load_dataset`.

Loaders register with :func:`register_dataset`; a duplicate name raises. Every loader is
called as ``loader(split=..., root=..., download=...)`` with the split already checked and,
for file-based datasets, the root already resolved to an existing folder.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ._dataset import ImageDataset
from ._errors import DatasetNotFoundError
from ._files import resolve_root

__all__ = [
    "DatasetInfo",
    "Split",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]

Loader = Callable[..., ImageDataset]


class Split(StrEnum):
    """Which part of a dataset to load.

    There is no validation split: hold one out of ``TRAIN`` for model selection.
    """

    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset, before loading it.

    Attributes:
        name: Registered name, lower case (``"mnist"``).
        classes: Class names, indexed by label.
        image_shape: ``(C, H, W)`` of every image.
        needs_root: Whether the data is read from files under a data root (``--data-root``);
            ``False`` for data embedded in an installed package.
        layout: Where the files go under the data root, for messages and ``--help``.
        loader: ``loader(*, split, root, download) -> ImageDataset``.
    """

    name: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    needs_root: bool
    layout: str
    loader: Loader


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    *,
    classes: tuple[str, ...],
    image_shape: tuple[int, int, int],
    needs_root: bool,
    layout: str,
) -> Callable[[Loader], Loader]:
    """Decorator that registers a loader under ``name``.

    Raises:
        ValueError: ``name`` is already registered, or is not lower case without spaces.
    """
    if not isinstance(name, str) or not name or name != name.strip().lower() or " " in name:
        raise ValueError(f"dataset name must be a lower-case str without spaces; got {name!r}")

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(
                f"dataset {name!r} is already registered (by "
                f"{_REGISTRY[name].loader.__module__}); choose another name"
            )
        _REGISTRY[name] = DatasetInfo(
            name=name,
            classes=tuple(classes),
            image_shape=tuple(image_shape),
            needs_root=needs_root,
            layout=layout,
            loader=loader,
        )
        return loader

    return decorate


def list_datasets() -> tuple[str, ...]:
    """The registered dataset names, sorted (for CLI choices)."""
    return tuple(sorted(_REGISTRY))


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (case-insensitive).

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: unknown name; the message lists the valid ones and the closest match.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str; got {type(name).__name__}")
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown dataset {name!r}; valid: {list(list_datasets())}.{hint}")


def _parse_split(split: Split | str) -> Split:
    if isinstance(split, Split):
        return split
    if not isinstance(split, str):
        raise TypeError(f"split must be a str or Split; got {type(split).__name__}")
    try:
        return Split(split.strip().lower())
    except ValueError:
        raise ValueError(
            f"split must be one of {[s.value for s in Split]}; got {split!r}"
        ) from None


def load_dataset(
    name: str,
    *,
    split: Split | str = Split.TRAIN,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> ImageDataset:
    """Load one split of a registered dataset into memory.

    File-based datasets (``mnist``, ``fashion-mnist``, ``cifar10``) are read from the
    torchvision layout under ``root`` (``ROOT/MNIST/raw/...``, ``ROOT/FashionMNIST/raw/...``,
    ``ROOT/cifar-10-batches-py/...``; the folder holding the files also works), checked by
    format, and only warned about (:class:`ChecksumWarning`) if they differ from the official
    release. A split needs only its own files. ``digits`` is embedded and ignores ``root``
    and ``download``.

    Args:
        name: A name from :func:`list_datasets` (case-insensitive).
        split: ``"train"`` or ``"test"``.
        root: The data root (CLI: ``--data-root``); required for file-based datasets.
        download: If the split's files are missing, fetch them into ``root`` with
            torchvision's downloader (needs internet), then read them as above.

    Returns:
        An :class:`ImageDataset`: float32 ``(N, C, H, W)`` images in [0, 1], int64 ``(N,)``
        labels, the class names and a :class:`DataFingerprint`.

    Raises:
        ValueError: unknown ``name`` or ``split``.
        TypeError: an argument of the wrong type.
        DatasetNotFoundError: ``root`` is missing or does not hold the split's files, or the
            download failed.
        DatasetFormatError: a file is malformed (the message names it and what was expected).
    """
    info = dataset_info(name)
    parsed = _parse_split(split)
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool; got {type(download).__name__}")
    path: Path | None = None
    if info.needs_root:
        if root is None:
            raise DatasetNotFoundError(
                f"dataset {info.name!r} is read from files: pass root=DIR, the folder that "
                f"holds {info.layout}; or root=DIR with download=True to fetch "
                "it there with torchvision (needs internet). The embedded 'digits' dataset "
                "needs no files."
            )
        path = resolve_root(root, dataset=info.name, create=download)
    return info.loader(split=parsed.value, root=path, download=download)
