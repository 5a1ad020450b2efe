"""One batch of images handed to the engine by a dataset's ``batches`` method."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Batch"]


@dataclass(frozen=True, eq=False)
class Batch:
    """Images ``[start, stop)`` of a dataset, ready for the sweep.

    Attributes:
        start, stop: The image range.
        images: ``(stop - start, C, H, W)`` float32 in [0, 1]; ``None`` when no image of the
            range decoded.
        ok: ``(stop - start,)`` bool, False for files skipped as unreadable; ``None``: all
            decoded.
    """

    start: int
    stop: int
    images: Tensor | None
    ok: Tensor | None = None
