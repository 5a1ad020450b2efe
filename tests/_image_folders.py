"""Image folders (``ROOT/<class>/<file>``) that tests write themselves.

From the shared CIFAR-10 training images (``../shared/data/cifar10-train``, see DATA.md;
tests that need them skip cleanly when they are absent), saved as PNG (lossless: the same
pixels as the pickle) or JPEG, or from seeded random pixels when the content does not
matter. Importable from any test module (``tests/`` is on ``sys.path`` through
``tests/conftest.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-train"


def shared_cifar(n: int):
    """The first ``n`` shared CIFAR-10 training images (an ``ImageDataset``), or a skip."""
    from geomrobust.transforms.datasets import ChecksumWarning, load_dataset

    if not SHARED_CIFAR.is_dir():
        pytest.skip(f"needs the shared CIFAR-10 images at {SHARED_CIFAR} (see DATA.md)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)
        return load_dataset("cifar10", split="train", root=SHARED_CIFAR).head(n)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] -> ``(H, W, C)`` (or ``(H, W)``) uint8."""
    array = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def write_folder(
    root: Path,
    images: torch.Tensor | Sequence[np.ndarray],
    labels: Sequence[int],
    classes: Sequence[str],
    *,
    suffix: str = ".png",
) -> list[Path]:
    """Save image ``i`` as ``root/<classes[labels[i]]>/<i:05d><suffix>``; returns the paths
    in index order. ``images`` is a float ``(N, C, H, W)`` tensor or uint8 arrays."""
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        array = to_uint8(image) if isinstance(image, torch.Tensor) else image
        folder = root / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}{suffix}"
        Image.fromarray(array).save(path, **({"quality": 90} if suffix == ".jpg" else {}))
        paths.append(path)
    return paths


def random_folder(
    root: Path, classes: Sequence[str], per_class: int, *, size=(12, 10), seed: int = 0
) -> Path:
    """``per_class`` random RGB PNGs of ``size`` (H, W) in each class folder."""
    rng = np.random.default_rng(seed)
    n = per_class * len(classes)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]
    labels = [i // per_class for i in range(n)]
    write_folder(root, images, labels, classes)
    return root
