"""Users' own image folders, streamed: decoded in DataLoader workers, never all in memory.

:func:`load_image_folder` lists the files, assigns labels and fingerprints the folder; it
decodes nothing. :meth:`FolderDataset.batches` decodes the images of the ranges asked for,
once, in ``workers`` processes, applies the :class:`Preprocess` (resize, centre crop) per
image, and yields float batches in [0, 1] for the engine to run every sweep point on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._batch import Batch
from ._errors import DatasetFormatError
from ._fingerprint import array_sha256
from ._folder_index import (
    ClassAssignment,
    FolderFingerprint,
    assign_classes,
    read_class_map,
    scan_folder,
)
from ._preprocess import DecodeError, Preprocess, decode_image_file

__all__ = ["FolderDataset", "default_workers", "load_image_folder", "reopen_image_folder"]


def default_workers() -> int:
    """Decoding workers by default: half the usable cores, at least 1 and at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores // 2))


class _Items(torch.utils.data.Dataset):
    """Decode + preprocess of one file, in a worker; errors come back as data, not raised,
    so the main process can give one clean message."""

    def __init__(self, root: Path, files: Sequence[str], channels: int, grey: bool, pre):
        self.root, self.files, self.channels, self.grey, self.pre = root, files, channels, grey, pre

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor | None, tuple[str, str] | None]:
        path = self.root / self.files[index]
        try:
            image, _ = decode_image_file(path, channels=self.channels, grey=self.grey)
        except (DecodeError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            return None, ("unreadable", f"{path} does not decode as an image ({reason})")
        except ValueError as exc:
            return None, ("error", str(exc))
        try:
            return self.pre(image, name=str(path)).contiguous(), None
        except ValueError as exc:
            return None, ("error", str(exc))


def _collate(items: list[tuple[Tensor | None, tuple[str, str] | None]]):
    """``(images | None, ok | None, error | None)``: stacked images, which decoded, and the
    first error that stops the run."""
    unreadable = [err for _, err in items if err is not None and err[0] == "unreadable"]
    for _, err in items:
        if err is not None and err[0] == "error":
            return None, None, err
    shapes = {tuple(x.shape) for x, _ in items if x is not None}
    if len(shapes) > 1:
        a, b = sorted(shapes)[:2]
        return (
            None,
            None,
            (
                "error",
                f"images differ in size after preprocessing ({a[1]}×{a[2]} and {b[1]}×{b[2]}); "
                "pass crop=(H, W) (and resize=N) so that every image has one size",
            ),
        )
    if not shapes:
        return None, torch.zeros(len(items), dtype=torch.bool), unreadable[0]
    shape = shapes.pop()
    images = torch.stack([x if x is not None else torch.zeros(shape) for x, _ in items])
    if not unreadable:
        return images, None, None
    ok = torch.tensor([x is not None for x, _ in items])
    return images, ok, unreadable[0]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


@dataclass(frozen=True, eq=False)
class FolderDataset:
    """An image folder, listed and labelled; images are decoded only by :meth:`batches`.

    Attributes:
        root: The folder (absolute).
        files: Paths relative to ``root``, in the dataset's order (classes, then files,
            sorted).
        labels: ``(N,)`` int64 labels.
        classes: Class names, indexed by label (:class:`ClassAssignment`).
        output_index: With a class map, the model output of each class but the last
            (``"(other)"``); ``None``: labels are model outputs.
        class_source: ``"folders"``, ``"checkpoint"`` or ``"class_map"``.
        channels: Channels of the decoded images (3, or 1 for a grey model).
        grey: Whether colour images are converted to grey (else they are an error for a
            1-channel model).
        skip_unreadable: Skip files that do not decode (their predictions are ``-1``) instead
            of stopping with an error.
        fingerprint: The folder's :class:`FolderFingerprint`.
        max_images: The ``max_images`` the listing was cut to, or ``None``.
    """

    root: Path
    files: tuple[str, ...]
    labels: Tensor
    classes: tuple[str, ...]
    output_index: tuple[int, ...] | None
    class_source: str
    channels: int
    grey: bool
    skip_unreadable: bool
    fingerprint: FolderFingerprint
    max_images: int | None = None
    name: str = "imagefolder"
    streamed: bool = True

    @property
    def split(self) -> str:
        """The folder's name (the folder is the split: ``val/`` for ImageNet)."""
        return self.root.name or str(self.root)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batches(
        self,
        ranges: Sequence[tuple[int, int]],
        *,
        batch_size: int,
        preprocess: Preprocess | None = None,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator[Batch]:
        """Decode the images of ``ranges`` once, in order, ``batch_size`` at a time.

        Batches never cross a range's boundary. Decoding runs in ``workers`` DataLoader
        processes (0: in this process), one pool for all ranges.

        Raises:
            DatasetFormatError: a file that does not decode (unless ``skip_unreadable``),
                a colour image for a 1-channel model without ``grey``, a crop larger than
                an image, or images of different sizes after preprocessing.
        """
        index_batches = [
            list(range(s, min(s + batch_size, stop)))
            for start, stop in ranges
            for s in range(start, stop, batch_size)
        ]
        if not index_batches:
            return
        items = _Items(self.root, self.files, self.channels, self.grey, preprocess or Preprocess())
        loader = torch.utils.data.DataLoader(
            items,
            batch_sampler=index_batches,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=pin_memory,
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=4 if workers else None,
        )
        for indices, (images, ok, error) in zip(index_batches, loader, strict=True):
            if error is not None and (error[0] == "error" or not self.skip_unreadable):
                hint = (
                    "; pass skip_unreadable=True to skip such files (they are counted in the "
                    "result)"
                    if error[0] == "unreadable"
                    else ""
                )
                raise DatasetFormatError(error[1] + hint)
            yield Batch(indices[0], indices[-1] + 1, images, ok)

    def head(self, n: int) -> FolderDataset:
        """The first ``n`` files (all if fewer), with their own fingerprint."""
        return _build(
            self.root,
            self.files[:n],
            self.labels[:n].clone(),
            _assignment(self),
            channels=self.channels,
            grey=self.grey,
            skip_unreadable=self.skip_unreadable,
            fingerprint=self.fingerprint.kind,
            max_images=n,
        )

    def decode(self, indices: Sequence[int], *, preprocess: Preprocess | None = None) -> Tensor:
        """``(len(indices), C, H, W)`` float images of the files at ``indices``, decoded and
        preprocessed as :meth:`batches` does (in this process; for a few images, such as a
        report's gallery).

        Raises:
            DatasetFormatError: as for :meth:`batches`.
        """
        items = _Items(self.root, self.files, self.channels, self.grey, preprocess or Preprocess())
        images, _, error = _collate([items[int(i)] for i in indices])
        if error is not None:
            raise DatasetFormatError(error[1])
        return images

    def without(self, files: Sequence[str]) -> FolderDataset:
        """The same dataset less ``files`` (the unreadable files a result skipped), so that
        its indices are those of the result's predictions; the fingerprint stays the
        listing's."""
        drop = set(files)
        keep = [i for i, f in enumerate(self.files) if f not in drop]
        return replace(
            self, files=tuple(self.files[i] for i in keep), labels=self.labels[keep].clone()
        )

    def data_record(self) -> dict[str, Any]:
        """What a result records about the folder beyond its fingerprint."""
        return {
            "root": str(self.root),
            "classes": list(self.classes),
            "class_source": self.class_source,
            "output_index": None if self.output_index is None else list(self.output_index),
            "channels": self.channels,
            "grey": self.grey,
            "skip_unreadable": self.skip_unreadable,
        }


def _assignment(data: FolderDataset) -> ClassAssignment:
    return ClassAssignment(data.classes, {}, data.output_index, data.class_source)


def _build(
    root, files, labels, assignment, *, channels, grey, skip_unreadable, fingerprint, max_images
):
    labels_sha = array_sha256(labels.numpy())
    return FolderDataset(
        root=root,
        files=tuple(files),
        labels=labels,
        classes=assignment.classes,
        output_index=assignment.output_index,
        class_source=assignment.source,
        channels=channels,
        grey=grey,
        skip_unreadable=skip_unreadable,
        fingerprint=FolderFingerprint.compute(root, files, labels_sha, kind=fingerprint),
        max_images=max_images,
    )


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, int] | str | os.PathLike[str] | None = None,
    channels: int = 3,
    grey: bool = False,
    skip_unreadable: bool = False,
    max_images: int | None = None,
    fingerprint: str = "content",
) -> FolderDataset:
    """List an image folder (``ROOT/<class>/<file>``) for streamed evaluation.

    Args:
        root: The folder; it is the split (for ImageNet, ``val/``).
        classes: The model's class names, when its checkpoint records them: folders are
            matched to them by name, in any order, for any subset.
        class_map: ``{folder: model output}`` or a file with it (:func:`read_class_map`);
            for evaluating a model on some of its classes.
        channels: 3 (grey images get their channel repeated) or 1.
        grey: With ``channels=1``, convert colour images to grey (else they are an error).
        skip_unreadable: Skip files that do not decode, counting them in the result.
        max_images: Keep the first ``max_images`` files in the dataset's order.
        fingerprint: ``"content"`` (hash every file) or ``"fast"`` (paths, sizes, mtimes).

    Raises:
        DatasetNotFoundError: no such folder, or no class sub-folders.
        DatasetFormatError: an empty class folder, folders that do not match ``classes``
            or ``class_map``, a bad class map.
        ValueError: bad arguments.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels!r}")
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
    ):
        raise ValueError(f"max_images must be an int >= 1; got {max_images!r}")
    root = Path(root).expanduser().resolve()
    found = scan_folder(root)
    if class_map is not None and not isinstance(class_map, Mapping):
        class_map = read_class_map(class_map)
    assignment = assign_classes(root, list(found), classes=classes, class_map=class_map)
    files = [f for folder in found for f in found[folder]]
    labels = np.array(
        [assignment.label_of[folder] for folder in found for _ in found[folder]], dtype=np.int64
    )
    if max_images is not None:
        files, labels = files[:max_images], labels[:max_images]
    return _build(
        root,
        files,
        torch.from_numpy(labels),
        assignment,
        channels=channels,
        grey=grey,
        skip_unreadable=skip_unreadable,
        fingerprint=fingerprint,
        max_images=max_images,
    )


def reopen_image_folder(
    record: Mapping[str, Any], *, root: str | os.PathLike[str] | None = None
) -> FolderDataset:
    """The folder a result was computed on, listed again from the result's ``data`` record
    and checked against its fingerprint; unreadable files the result skipped are left out,
    so indices match the result's predictions.

    Args:
        record: The result's ``data`` record (``DataRecord.to_dict()``).
        root: Where the folder is now (default: where it was).

    Raises:
        DatasetNotFoundError: the folder is gone.
        DatasetFormatError: the folder's files are not those that were evaluated.
    """
    folder = record["folder"]
    classes, outputs = folder["classes"], folder.get("output_index")
    source = folder["class_source"]
    kind = record["fingerprint"]["kind"]
    data = load_image_folder(
        root if root is not None else folder["root"],
        classes=classes if source == "checkpoint" else None,
        class_map=dict(zip(classes, outputs, strict=False)) if source == "class_map" else None,
        channels=folder["channels"],
        grey=folder["grey"],
        skip_unreadable=folder["skip_unreadable"],
        max_images=record.get("max_images"),
        fingerprint=kind,
    )
    found = data.fingerprint.to_dict()
    if found != dict(record["fingerprint"]):
        differs = sorted(k for k in found if found[k] != record["fingerprint"].get(k))
        raise DatasetFormatError(
            f"{data.root} is not the folder that was evaluated: its {', '.join(differs)} "
            f"differ ({found['n_images']} files now, {record['fingerprint']['n_images']} then)"
        )
    return data.without(record.get("unreadable") or ())
