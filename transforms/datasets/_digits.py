"""scikit-learn's bundled 8×8 handwritten digits in an MNIST-like 28×28 frame."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DIGITS_CLASSES", "load_digits"]

DIGITS_CLASSES = tuple(str(d) for d in range(10))
_SPLITS = ("train", "test", "all")
_TEST_FRACTION = 0.2
_SPLIT_SEED = 20261123  # fixed: the split never changes between versions or machines


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
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}; got {split!r}")
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", antialias=True)
    images = F.pad(images, (4, 4, 4, 4)).clamp_(0.0, 1.0)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    if split == "all":
        return images, labels
    rng = np.random.default_rng(_SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        members = np.flatnonzero(bunch.target == c)
        n_test = round(_TEST_FRACTION * len(members))
        test[rng.choice(members, size=n_test, replace=False)] = True
    keep = torch.from_numpy(test if split == "test" else ~test)
    return images[keep].contiguous(), labels[keep]
