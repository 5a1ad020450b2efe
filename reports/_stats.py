"""Multiple-testing correction shared by the report's tables and figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["holm_reject"]


def holm_reject(pvalues: Sequence[float] | np.ndarray, alpha: float) -> np.ndarray:
    """Holm–Bonferroni rejections (family-wise error ``alpha``) of ``pvalues``.

    The ``k``-th smallest p-value (``k`` from 0) is rejected while every p-value up to it is
    at most ``alpha / (m - k)``, ``m`` the number of p-values.

    Returns:
        A boolean array, ``True`` where the hypothesis is rejected, in the input's order.
    """
    pvalues = np.asarray(pvalues, dtype=float)
    m = pvalues.size
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(pvalues, kind="stable")):
        if pvalues[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject
