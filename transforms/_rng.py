"""Seeds and index-keyed random numbers that never touch the global RNG.

Every random draw of the suite is a pure function of ``(seed, epoch, stream, index)``: image
``i`` gets the same numbers whatever the batch size, the number of workers or the device.
The generator is counter-based (SplitMix64 finalisers over 64-bit keys), computed on the CPU
with NumPy, and only the results are moved to the images' device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["SeedLike", "keyed_uniform", "resolve_seed"]

SeedLike = torch.Generator | int | None

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def resolve_seed(generator: SeedLike) -> int:
    """Turn ``None``, an ``int`` or a ``torch.Generator`` into a 64-bit seed.

    Args:
        generator: ``None`` draws a fresh seed from the operating system (results are then
            not reproducible); an ``int`` in ``[0, 2**64)`` is used as is; a
            ``torch.Generator`` gives one draw (advancing that generator only).

    Raises:
        TypeError: for any other type (``bool`` included).
        ValueError: for an ``int`` outside ``[0, 2**64)``.
    """
    if generator is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(generator, bool):
        raise TypeError("generator must be a torch.Generator, an int seed or None; got bool")
    if isinstance(generator, (int, np.integer)):
        seed = int(generator)
        if not 0 <= seed <= _MASK64:
            raise ValueError(f"seed must be in [0, 2**64); got {seed}")
        return seed
    if isinstance(generator, torch.Generator):
        high = torch.randint(0, 2**31, (2,), generator=generator, device=generator.device)
        a, b = (int(v) for v in high.tolist())
        return (a << 31) | b
    raise TypeError(
        f"generator must be a torch.Generator, an int seed or None; got {type(generator).__name__}"
    )


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective avalanche of 64-bit integers."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _key(seed: int, epoch: int, stream: int) -> np.uint64:
    with np.errstate(over="ignore"):
        k = _mix(np.array([seed & _MASK64], dtype=np.uint64))
        k = _mix(k ^ np.array([(epoch * 0xD1B54A32D192ED03) & _MASK64], dtype=np.uint64))
        k = _mix(k + np.array([(stream * 0xAEF17502108EF2D9) & _MASK64], dtype=np.uint64))
    return k[0]


def as_indices(indices: Tensor | Sequence[int] | np.ndarray | int) -> np.ndarray:
    """Indices as a 1-D int64 NumPy array; an ``int n`` means ``range(n)``."""
    if isinstance(indices, bool):
        raise TypeError("indices must be an int count, a sequence or a tensor of ints; got bool")
    if isinstance(indices, (int, np.integer)):
        if indices < 0:
            raise ValueError(f"indices as a count must be >= 0; got {indices}")
        return np.arange(int(indices), dtype=np.int64)
    if isinstance(indices, Tensor):
        if indices.is_floating_point() or indices.is_complex():
            raise TypeError(f"indices must be integers; got a {indices.dtype} tensor")
        arr = indices.detach().cpu().numpy()
    else:
        arr = np.asarray(indices)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"indices must be integers; got {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).reshape(-1)
    if arr.size and arr.min() < 0:
        raise ValueError(f"indices must be >= 0; got {int(arr.min())}")
    return arr


def keyed_uniform(seed: int, indices: np.ndarray, *, stream: int, epoch: int = 0) -> np.ndarray:
    """Uniform float64 draws in ``[0, 1)``, one per index, a pure function of the keys.

    Args:
        seed: 64-bit seed (see :func:`resolve_seed`).
        indices: 1-D int64 array of item indices (e.g. dataset indices).
        stream: Which quantity is drawn (each parameter has its own stream).
        epoch: Mixed into the key so that each epoch of augmentation differs.

    Returns:
        ``(len(indices),)`` float64 array with 53 random bits per value.
    """
    key = _key(seed, epoch, stream)
    with np.errstate(over="ignore"):
        z = _mix(key + (indices.astype(np.uint64) + np.uint64(1)) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
