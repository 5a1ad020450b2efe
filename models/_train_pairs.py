"""Training ``pair-net`` on transformation pairs (``geomrobust train-pairs``).

Training pairs are drawn from the training part of the split, afresh each epoch (pair set
``epoch`` has seed ``derive_seed(seed, 5, epoch)``); validation pairs are a fixed set drawn
from the held-out images only, so no validation image is ever seen in training.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from geomrobust.transforms.datasets import ImageDataset, PairClass, PairConfig, TransformPairs

from ._meta import CheckpointMeta
from ._train_config import (
    TrainConfig,
    TrainResult,
    channel_stats,
    derive_seed,
    split_indices,
    split_record,
)
from ._train_loop import fit
from ._training import _build, normalise

__all__ = ["evaluate_pairs", "pair_class_names", "train_pairs"]

_EVAL_BATCH = 500


def pair_class_names(num_classes: int) -> tuple[str, ...]:
    """Class names of a 7- or 8-class pair model, e.g. ``("none", "displacement", ...)``."""
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8; got {num_classes}")
    return tuple(c.name.lower() for c in PairClass)[:num_classes]


def _subset(dataset: ImageDataset, indices: Tensor, *, part: str) -> ImageDataset:
    fingerprint = dataclasses.replace(
        dataset.fingerprint, split=f"{dataset.split}[{part}]", n_images=len(indices)
    )
    return dataclasses.replace(
        dataset,
        images=dataset.images[indices],
        labels=dataset.labels[indices],
        fingerprint=fingerprint,
    )


def evaluate_pairs(
    model: nn.Module,
    originals: Tensor,
    transformed: Tensor,
    labels: Tensor,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_classes: int,
    batch_size: int = _EVAL_BATCH,
) -> dict[str, Any]:
    """Overall and per-class accuracy of a pair model (eval mode) on ``(N, C, H, W)`` pairs.

    Returns:
        ``{"accuracy": overall, "per_class": {name: accuracy}, "min_class_accuracy": ...}``.
    """
    device = next(model.parameters()).device
    preds = []
    with torch.no_grad():
        for i in range(0, originals.shape[0], batch_size):
            a = normalise(originals[i : i + batch_size].to(device), mean, std)
            b = normalise(transformed[i : i + batch_size].to(device), mean, std)
            preds.append(model(a, b).argmax(dim=1).cpu())
    pred = torch.cat(preds)
    right = pred == labels.cpu()
    names = pair_class_names(num_classes)
    per_class = {
        name: float(right[labels == k].double().mean()) if bool((labels == k).any()) else None
        for k, name in enumerate(names)
    }
    present = [v for v in per_class.values() if v is not None]
    return {
        "accuracy": float(right.double().mean()),
        "per_class": per_class,
        "min_class_accuracy": min(present),
    }


class _PairTask:
    def __init__(
        self,
        train_source: ImageDataset,
        val_pairs: TransformPairs,
        *,
        config: TrainConfig,
        pair_config: PairConfig,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
    ) -> None:
        self.source, self.config, self.pair_config = train_source, config, pair_config
        self.mean, self.std, self.device = mean, std, device
        self.n_train = config.pairs_per_epoch or len(train_source)
        self.num_classes = pair_config.num_classes
        a, b, y, _ = val_pairs.batch(range(len(val_pairs)))
        self.val = (a, b, y)
        self._epoch, self._pairs = 0, None

    def _epoch_pairs(self, epoch: int) -> TransformPairs:
        if self._epoch != epoch:
            seed = derive_seed(self.config.seed, 5, epoch)
            self._pairs = TransformPairs(
                self.source, self.n_train, config=self.pair_config, generator=seed
            )
            self._epoch = epoch
        return self._pairs

    def batch(self, model: nn.Module, positions: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        a, b, y, _ = self._epoch_pairs(epoch).batch(positions)
        a = normalise(a.to(self.device), self.mean, self.std)
        b = normalise(b.to(self.device), self.mean, self.std)
        return model(a, b), y.to(self.device)

    def validate(self, model: nn.Module) -> dict[str, Any]:
        return evaluate_pairs(
            model, *self.val, mean=self.mean, std=self.std, num_classes=self.num_classes
        )

    final_validation = validate


def train_pairs(
    config: TrainConfig,
    dataset: ImageDataset,
    *,
    out: str | os.PathLike[str],
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: torch.device | str | None = None,
    on_epoch_end: Callable[[Mapping[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``pair-net`` to tell which transforms turned an image into its pair.

    Args:
        config: Settings; ``config.model`` must be ``"pair-net"`` (``model_args`` may name
            its ``encoder``), ``config.pair_classes`` 7 (default) or 8, ``pairs_per_epoch``
            and ``val_pairs`` the pair counts. ``config.augment`` must be ``None``.
        dataset: The training split whose images the pairs are drawn from.
        out, resume, force, progress, device, on_epoch_end: As in :func:`train_classifier`.

    Returns:
        A :class:`TrainResult` whose ``validation`` holds the overall and per-class accuracy
        on the fixed validation pairs.

    Raises:
        ValueError: another model than ``pair-net``, augmentation requested, bad ``out``
            or a mismatched resume.
        FileExistsError, FileNotFoundError: see ``force`` and ``resume``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset; got {type(dataset).__name__}")
    if config.model != "pair-net":
        raise ValueError(
            f"train_pairs trains 'pair-net'; got model {config.model!r} (choose the encoder "
            "with model_args={'encoder': NAME}, or train a classifier with train_classifier)"
        )
    if config.augment is not None:
        raise ValueError(
            "augmentation does not apply to pair training: the pairs are the transforms"
        )
    num_classes = config.pair_classes or 7
    dev = torch.device(device) if device is not None else torch.device("cpu")
    train_idx, val_idx = split_indices(
        len(dataset), val_fraction=config.val_fraction, seed=config.seed
    )
    mean, std = channel_stats(dataset.images[train_idx])
    pair_config = PairConfig(num_classes=num_classes)
    val_pairs = TransformPairs(
        _subset(dataset, val_idx, part="validation"),
        config.val_pairs,
        config=pair_config,
        generator=derive_seed(config.seed, 6),
    )
    c, h, w = dataset.image_shape
    model, shuffle = _build(
        config, in_channels=c, num_classes=num_classes, input_size=(h, w), device=dev
    )
    task = _PairTask(
        _subset(dataset, train_idx, part="training"),
        val_pairs,
        config=config,
        pair_config=pair_config,
        mean=mean,
        std=std,
        device=dev,
    )
    meta = CheckpointMeta(
        input_shape=(c, h, w),
        class_names=pair_class_names(num_classes),
        mean=mean,
        std=std,
        data_fingerprint=dataset.fingerprint.to_dict(),
    )
    run_info = {
        "task": "pairs",
        "data": dataset.fingerprint.to_dict(),
        "pair_config": {
            "num_classes": num_classes,
            "angle_deg": [list(r) for r in pair_config.angle_deg],
            "scale": [list(r) for r in pair_config.scale],
            "shift_fraction": list(pair_config.shift_fraction),
            "crop": pair_config.crop,
        },
        "split": split_record(train_idx, val_idx),
    }
    return fit(
        model,
        task,
        config,
        shuffle=shuffle,
        out=out,
        meta=meta,
        run_info=run_info,
        resume=resume,
        force=force,
        progress=progress,
        on_epoch_end=on_epoch_end,
    )
