"""The in-memory result of every loader: images, labels, class names and a fingerprint."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._batch import Batch
from ._fingerprint import DataFingerprint, FileDigest, array_sha256
from ._preprocess import Preprocess

__all__ = ["ImageDataset", "make_dataset"]

PIN_WHOLE_BYTES = 2 << 30
"""In-memory images up to this size are page-locked whole for a pass to the GPU."""


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """One split of a dataset, decoded into memory.

    Indexing gives ``(image, label)`` pairs, so it works as a map-style dataset for
    ``torch.utils.data.DataLoader``. Images are not normalised (mean/std): that is the
    model's or the pipeline's job.

    Attributes:
        name: Registered dataset name, e.g. ``"mnist"``.
        split: ``"train"`` or ``"test"``.
        images: ``(N, C, H, W)`` float32 tensor, values in [0, 1] (``uint8 / 255``).
        labels: ``(N,)`` int64 tensor, values in ``[0, len(classes))``.
        classes: Class names, indexed by label.
        fingerprint: What was read; store it with every result.
        max_images: The ``n`` of :meth:`head` this split was cut to, or ``None``.
    """

    name: str
    split: str
    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    fingerprint: DataFingerprint
    max_images: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.float32:
            raise TypeError(
                "ImageDataset.images must be a float32 tensor; got "
                f"{getattr(self.images, 'dtype', type(self.images).__name__)}"
            )
        if self.images.ndim != 4:
            raise ValueError(
                f"ImageDataset.images must have shape (N, C, H, W); got {tuple(self.images.shape)}"
            )
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64:
            raise TypeError(
                "ImageDataset.labels must be an int64 tensor; got "
                f"{getattr(self.labels, 'dtype', type(self.labels).__name__)}"
            )
        n = self.images.shape[0]
        if self.labels.shape != (n,):
            raise ValueError(
                f"ImageDataset.labels must have shape (N,) = ({n},) to match the images; "
                f"got {tuple(self.labels.shape)}"
            )
        classes = tuple(self.classes)
        if not classes or not all(isinstance(c, str) for c in classes):
            raise TypeError(f"ImageDataset.classes must be a non-empty tuple of str; got {classes}")
        object.__setattr__(self, "classes", classes)
        if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(classes)):
            raise ValueError(
                f"ImageDataset.labels must lie in [0, {len(classes)}) for {len(classes)} "
                f"classes; got [{int(self.labels.min())}, {int(self.labels.max())}]"
            )
        if not isinstance(self.fingerprint, DataFingerprint):
            raise TypeError(
                "ImageDataset.fingerprint must be a DataFingerprint; "
                f"got {type(self.fingerprint).__name__}"
            )
        if self.fingerprint.n_images != n:
            raise ValueError(
                f"ImageDataset.fingerprint counts {self.fingerprint.n_images} images; "
                f"the tensor holds {n}"
            )

    streamed = False  # images are in memory; FolderDataset streams them from files
    output_index = None  # labels are model outputs

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        """``C``."""
        return int(self.images.shape[1])

    def batches(
        self,
        ranges: Sequence[tuple[int, int]],
        *,
        batch_size: int,
        preprocess: Preprocess | None = None,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator[Batch]:
        """Images of ``ranges``, ``batch_size`` at a time (views; resized and cropped by
        ``preprocess`` when it is not the identity). With ``pin_memory`` (and CUDA), the
        images come from a page-locked copy, made once per call when they take at most
        :data:`PIN_WHOLE_BYTES`, else batch by batch, so copies to the GPU run
        asynchronously. ``workers`` is accepted for the same signature as
        :meth:`FolderDataset.batches` and unused."""
        images = self.images
        pin_each = False
        if pin_memory and torch.cuda.is_available() and not images.is_pinned():
            if images.numel() * images.element_size() <= PIN_WHOLE_BYTES:
                images = images.pin_memory()
            else:
                pin_each = True
        for start, stop in ranges:
            for s in range(start, stop, batch_size):
                e = min(s + batch_size, stop)
                x = images[s:e].pin_memory() if pin_each else images[s:e]
                if preprocess is not None and not preprocess.is_identity:
                    x = preprocess(x, name=f"{self.name} ({self.split}) images")
                yield Batch(s, e, x)

    def __getitem__(self, index: int | slice | Tensor) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """``len(classes)``."""
        return len(self.classes)

    def class_counts(self) -> Tensor:
        """``(num_classes,)`` int64 count of images per label."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def head(self, n: int) -> ImageDataset:
        """The first ``n`` images (all of them if there are fewer), for quick runs.

        The subset gets a fingerprint of its own: the sha256 of its pixels as ``uint8``
        (``round(255 · image)``) and of its labels, with the source's name and split and no
        files, so results on it are never mistaken for results on the whole split.

        Raises:
            ValueError: ``n`` is negative.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0; got {n!r}")
        requested, n = n, min(n, len(self))
        images, labels = self.images[:n].contiguous(), self.labels[:n].clone()
        fingerprint = DataFingerprint(
            dataset=self.name,
            split=self.split,
            n_images=n,
            images_sha256=array_sha256((images.numpy() * 255).round().astype(np.uint8)),
            labels_sha256=array_sha256(labels.numpy()),
        )
        return ImageDataset(
            self.name, self.split, images, labels, self.classes, fingerprint, max_images=requested
        )


def make_dataset(
    *,
    name: str,
    split: str,
    pixels: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    files: tuple[FileDigest, ...] = (),
    source_package: str | None = None,
    images: Tensor | None = None,
) -> ImageDataset:
    """Build an :class:`ImageDataset` and its fingerprint from decoded arrays.

    Args:
        name: Dataset name.
        split: Split name.
        pixels: ``(N, C, H, W)`` uint8 pixels; converted to float32 ``/ 255`` unless
            ``images`` is given.
        labels: ``(N,)`` integer labels.
        classes: Class names.
        files: The :class:`FileDigest` of every file read.
        source_package: ``"name==version"`` for bundled data.
        images: Already-converted float32 images (``digits``), used as is; ``pixels`` are
            then only hashed.
    """
    if images is None:
        converted = pixels.astype(np.float32)
        converted /= np.float32(255.0)
        images = torch.from_numpy(converted)
    labels64 = np.array(labels, dtype=np.int64)  # a writable copy, whatever the source
    fingerprint = DataFingerprint(
        dataset=name,
        split=split,
        n_images=int(labels64.shape[0]),
        images_sha256=array_sha256(pixels),
        labels_sha256=array_sha256(labels64),
        files=tuple(files),
        source_package=source_package,
    )
    return ImageDataset(
        name=name,
        split=split,
        images=images,
        labels=torch.from_numpy(labels64),
        classes=classes,
        fingerprint=fingerprint,
    )
