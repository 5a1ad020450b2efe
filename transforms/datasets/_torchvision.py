"""``download=True``: torchvision's downloader fetches the files, our readers read them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._errors import DatasetNotFoundError

__all__ = ["download_with_torchvision"]


def download_with_torchvision(
    class_name: str, *, root: Path, split: str, title: str, have: Callable[[], Any]
) -> None:
    """Fetch a split into ``root`` with ``torchvision.datasets.<class_name>``, if it is missing.

    Nothing is fetched when ``have()`` finds the split's files already. torchvision fetches
    and checks the official archives (both splits) and unpacks them into its own layout under
    ``root``, which the readers of this package understand.

    Args:
        class_name: ``"MNIST"``, ``"FashionMNIST"`` or ``"CIFAR10"``.
        root: The data root (an existing folder).
        split: ``"train"`` or ``"test"``.
        title: Dataset title for messages.
        have: Finds the split's files, raising :class:`DatasetNotFoundError` if missing.

    Raises:
        DatasetNotFoundError: torchvision failed (offline, say); the message says where to
            put the files by hand.
    """
    try:
        have()
    except DatasetNotFoundError:
        pass
    else:
        return
    import torchvision.datasets

    dataset_cls = getattr(torchvision.datasets, class_name)
    try:
        dataset_cls(str(root), train=split == "train", download=True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, OSError, ...
        raise DatasetNotFoundError(
            f"download=True could not fetch {title} into {str(root)!r} with "
            f"torchvision.datasets.{class_name} ({type(exc).__name__}: {exc}). Without "
            "internet, copy the files into the data root in torchvision's layout and load "
            "with download=False.",
            path=root,
        ) from exc
