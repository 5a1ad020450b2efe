"""Training settings and results: :class:`TrainConfig`, :class:`TrainResult`, and the fixed
validation split derived from a seed and the training set only."""

from __future__ import annotations

import hashlib
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._augment import AugmentSpec

__all__ = ["TrainConfig", "TrainResult", "channel_stats", "derive_seed", "split_indices"]

_MASK63 = (1 << 63) - 1


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that is a pure function of ``seed`` and ``keys`` (one stream per use)."""
    digest = hashlib.sha256(":".join(str(int(v)) for v in (seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & _MASK63


def _check_int(value: Any, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"TrainConfig.{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"TrainConfig.{name} must be >= {minimum}; got {value}")
    return value


def _check_float(value: Any, *, name: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"TrainConfig.{name} must be a finite float; got {value!r}")
    if value <= low or (high is not None and value >= high):
        bound = f"in ({low}, {high})" if high is not None else f"> {low}"
        raise ValueError(f"TrainConfig.{name} must be {bound}; got {value}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result (on CPU, for a given thread count).

    Attributes:
        model: Registry name (``"mnist-cnn"``, ``"pair-net"``...).
        model_args: Extra builder options (JSON), e.g. ``{"offset_bound_frac": 0.25}``.
        epochs: Epochs to train.
        batch_size: Images (or pairs) per optimiser step.
        lr: Adam learning rate.
        step_gamma: If set, ``StepLR(step_size=step_size, gamma=step_gamma)`` after each epoch.
        step_size: Epochs between learning-rate decays.
        weight_decay: Adam weight decay.
        val_fraction: Share of the training images held out for validation (model selection).
        seed: Seeds the weights, the split, the shuffling and the augmentation.
        augment: Random affine augmentation of the training images, or ``None``.
        pair_classes: ``train-pairs`` only: 7 or 8 transform classes.
        pairs_per_epoch: ``train-pairs`` only: fresh training pairs drawn each epoch
            (0: as many as training images).
        val_pairs: ``train-pairs`` only: fixed validation pairs drawn from the held-out images.
    """

    model: str
    model_args: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 14
    batch_size: int = 64
    lr: float = 1e-3
    step_gamma: float | None = None
    step_size: int = 1
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0
    augment: AugmentSpec | None = None
    pair_classes: int | None = None
    pairs_per_epoch: int = 0
    val_pairs: int = 2000

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"TrainConfig.model must be a registry name; got {self.model!r}")
        if not isinstance(self.model_args, Mapping):
            raise TypeError(
                f"TrainConfig.model_args must be a dict; got {type(self.model_args).__name__}"
            )
        object.__setattr__(self, "model_args", types.MappingProxyType(dict(self.model_args)))
        _check_int(self.epochs, name="epochs", minimum=1)
        _check_int(self.batch_size, name="batch_size", minimum=1)
        _check_int(self.step_size, name="step_size", minimum=1)
        _check_int(self.seed, name="seed", minimum=0)
        _check_int(self.pairs_per_epoch, name="pairs_per_epoch", minimum=0)
        _check_int(self.val_pairs, name="val_pairs", minimum=1)
        object.__setattr__(self, "lr", _check_float(self.lr, name="lr", low=0.0))
        object.__setattr__(
            self,
            "val_fraction",
            _check_float(self.val_fraction, name="val_fraction", low=0.0, high=1.0),
        )
        if self.step_gamma is not None:
            gamma = _check_float(self.step_gamma, name="step_gamma", low=0.0)
            if gamma > 1.0:
                raise ValueError(f"TrainConfig.step_gamma must be in (0, 1]; got {gamma}")
            object.__setattr__(self, "step_gamma", gamma)
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, int | float):
            raise TypeError(f"TrainConfig.weight_decay must be a float; got {self.weight_decay!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0; got {self.weight_decay}")
        if self.augment is not None and not isinstance(self.augment, AugmentSpec):
            raise TypeError(
                "TrainConfig.augment must be an AugmentSpec or None (see parse_augment); "
                f"got {type(self.augment).__name__}"
            )
        if self.pair_classes not in (None, 7, 8):
            raise ValueError(
                f"TrainConfig.pair_classes must be 7, 8 or None; got {self.pair_classes!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (stored in the checkpoint's ``training`` metadata)."""
        return {
            "model": self.model,
            "model_args": dict(self.model_args),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": "adam",
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "scheduler": (
                None
                if self.step_gamma is None
                else {"name": "step", "step_size": self.step_size, "gamma": self.step_gamma}
            ),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "augment": None if self.augment is None else self.augment.to_dict(),
            "pair_classes": self.pair_classes,
            "pairs_per_epoch": self.pairs_per_epoch,
            "val_pairs": self.val_pairs,
        }


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced.

    Attributes:
        checkpoint: The ``.safetensors`` file written (weights of the best epoch).
        log: The JSON-lines log, one record per epoch.
        best_epoch: 1-based epoch whose weights were kept (highest validation accuracy).
        validation: Validation figures of the kept weights (``accuracy``, and for
            classifiers ``scale_sweep``/``mean_scale_accuracy``, for pairs ``per_class``).
        epochs_run: Epochs trained in total (across resumes).
        wall_time_s: Training and validation time in seconds, across resumes.
        history: The per-epoch records.
    """

    checkpoint: Path
    log: Path
    best_epoch: int
    validation: Mapping[str, Any]
    epochs_run: int
    wall_time_s: float
    history: tuple[Mapping[str, Any], ...]


def split_record(train_idx: Tensor, val_idx: Tensor) -> dict[str, Any]:
    """How the validation split was made, as recorded in a checkpoint's training metadata."""
    return {
        "rule": "split_indices(n, val_fraction, seed): sorted, seeded permutation",
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "val_indices": val_idx.tolist(),
    }


def split_indices(n: int, *, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed train/validation split of ``range(n)``, a pure function of ``(n, fraction,
    seed)``.

    Args:
        n: Training-set size.
        val_fraction: Share held out, in (0, 1); ``round(n * val_fraction)`` images, at
            least 1, leaving at least 1 for training.
        seed: Split seed.

    Returns:
        ``(train_indices, val_indices)``, each sorted int64.

    Raises:
        ValueError: ``n < 2`` or a fraction outside (0, 1).
    """
    if n < 2:
        raise ValueError(f"need at least 2 training images to hold out a validation split; got {n}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    gen = torch.Generator().manual_seed(derive_seed(seed, 1))
    perm = torch.randperm(n, generator=gen)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``(N, C, H, W)`` images (in float64)."""
    x = images.double().transpose(0, 1).reshape(images.shape[1], -1)
    mean = x.mean(dim=1)
    std = x.std(dim=1).clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
