"""scikit-learn's bundled 8×8 handwritten digits in an MNIST-like 28×28 frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._dataset import ImageDataset, make_dataset
from ._registry import register_dataset

__all__ = ["DIGITS_CLASSES", "load_digits", "load_digits_dataset"]

DIGITS_CLASSES = tuple(str(d) for d in range(10))
_SPLITS = ("train", "test", "all")
_TEST_FRACTION = 0.2
_SPLIT_SEED = 20261123  # fixed: the split never changes between versions or machines


def _digits_arrays(split: str) -> tuple[np.ndarray, Tensor, Tensor]:
    """``(source pixels (N, 1, 8, 8) uint8 0–16, images, labels)`` of one split."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}; got {split!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    source = bunch.images.astype(np.uint8)[:, None]  # integers 0..16 stored as float64
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", antialias=True)
    images = F.pad(images, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    if split == "all":
        return source, images, labels
    rng = np.random.default_rng(_SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = np.flatnonzero(bunch.target == c)
        n_test = round(_TEST_FRACTION * len(members))
        test[rng.choice(members, size=n_test, replace=False)] = True
    keep = test if split == "test" else ~test
    return source[keep], images[torch.from_numpy(keep)].contiguous(), labels[keep]


def load_digits(split: str = "train") -> tuple[Tensor, Tensor]:
    """The 1,797 scikit-learn digits as ``(N, 1, 28, 28)`` float images in [0, 1].

    Each 8×8 digit (values 0–16) is divided by 16, resized to 20×20 with antialiased
    bilinear interpolation and centred in a 28×28 zero frame, like MNIST's 20×20 digits.
    The split is fixed and stratified: 20 % of each class is ``test``.

    Args:
        split: ``"train"`` (1,438 images), ``"test"`` (359) or ``"all"``.

    Returns:
        ``(images, labels)``: float32 ``(N, 1, 28, 28)`` and int64 ``(N,)``.
    """
    _, images, labels = _digits_arrays(split)
    return images, labels


@register_dataset(
    "digits",
    classes=DIGITS_CLASSES,
    image_shape=(1, 28, 28),
    needs_root=False,
    layout="nothing (embedded in scikit-learn)",
)
def load_digits_dataset(
    *, split: str = "train", root: Path | None = None, download: bool = False
) -> ImageDataset:
    """:func:`load_digits` as an :class:`ImageDataset` with its fingerprint.

    The fingerprint has no files; it records scikit-learn's version and the sha256 of the
    split's 8×8 source pixels (uint8, values 0–16).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        root: Ignored: the data is embedded.
        download: Ignored: the data is embedded.
    """
    import sklearn

    source, images, labels = _digits_arrays(split)
    return make_dataset(
        name="digits",
        split=split,
        pixels=source,
        labels=labels.numpy(),
        classes=DIGITS_CLASSES,
        images=images,
        source_package=f"scikit-learn=={sklearn.__version__}",
    )
