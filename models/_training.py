"""Training image classifiers (``geomrobust train``) and their validation figures.

The validation split is a fixed, seeded index list held out from the training images
(:func:`split_indices`); it is the only data used for model selection. Images stay in
[0, 1] for augmentation and sweeps and are normalised with the training split's per-channel
mean and std, which the checkpoint stores (the model owns its normalisation).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geomrobust.transforms import get_sweep, warp
from geomrobust.transforms.datasets import ImageDataset

from ._meta import CheckpointMeta
from ._registry import build_model
from ._train_config import (
    TrainConfig,
    TrainResult,
    channel_stats,
    derive_seed,
    split_indices,
    split_record,
)
from ._train_loop import fit

__all__ = ["evaluate_accuracy", "evaluate_scale_sweep", "normalise", "train_classifier"]

_EVAL_BATCH = 500


def normalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(images - mean) / std`` per channel, on the images' device and dtype."""
    m = torch.as_tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def _predict(
    model: nn.Module,
    images: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
) -> Tensor:
    device = next(model.parameters()).device
    preds = []
    with torch.no_grad():
        for i in range(0, images.shape[0], batch_size):
            x = normalise(images[i : i + batch_size].to(device), mean, std)
            preds.append(model(x).argmax(dim=1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64)


def evaluate_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = _EVAL_BATCH,
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``(N, C, H, W)`` images in [0, 1]."""
    if images.shape[0] == 0:
        raise ValueError("images is empty: nothing to evaluate")
    preds = _predict(model, images, mean=mean, std=std, batch_size=batch_size)
    return float((preds == labels.cpu()).double().mean())


def evaluate_scale_sweep(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = _EVAL_BATCH,
) -> dict[str, Any]:
    """Accuracy at every point of the ``scale`` preset sweep (0.5 to 1.5, 11 points).

    Each point warps the [0, 1] images (bilinear, zero padding, about the centre; see
    :func:`geomrobust.transforms.warp`), then normalises them.

    Returns:
        ``{"accuracy": clean accuracy (scale 1.0), "scales": [...], "scale_accuracy":
        [...], "mean_scale_accuracy": mean over the points}``.
    """
    sweep = get_sweep("scale")
    accs = []
    for point in sweep.points:
        warped = images if point.is_identity else warp(images, point)
        accs.append(
            evaluate_accuracy(model, warped, labels, mean=mean, std=std, batch_size=batch_size)
        )
    clean = accs[sweep.identity_index] if sweep.identity_index is not None else None
    return {
        "accuracy": clean,
        "scales": [p.scale for p in sweep.points],
        "scale_accuracy": accs,
        "mean_scale_accuracy": sum(accs) / len(accs),
    }


class _ClassifierTask:
    def __init__(
        self,
        dataset: ImageDataset,
        train_idx: Tensor,
        val_idx: Tensor,
        *,
        config: TrainConfig,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
    ) -> None:
        self.indices = train_idx
        self.images = dataset.images[train_idx]
        self.labels = dataset.labels[train_idx]
        self.val_images = dataset.images[val_idx]
        self.val_labels = dataset.labels[val_idx]
        self.mean, self.std, self.device = mean, std, device
        self.n_train = len(train_idx)
        self.augment = None
        if config.augment is not None:
            self.augment = config.augment.module(seed=derive_seed(config.seed, 4))

    def batch(self, model: nn.Module, positions: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        x = self.images[positions]
        if self.augment is not None:
            # Keyed by dataset index: the same draws whatever the batch order.
            x = self.augment(x, self.indices[positions], epoch=epoch - 1)
        x = normalise(x.to(self.device), self.mean, self.std)
        return model(x), self.labels[positions].to(self.device)

    def validate(self, model: nn.Module) -> dict[str, Any]:
        acc = evaluate_accuracy(
            model, self.val_images, self.val_labels, mean=self.mean, std=self.std
        )
        return {"accuracy": acc}

    def final_validation(self, model: nn.Module) -> dict[str, Any]:
        return evaluate_scale_sweep(
            model, self.val_images, self.val_labels, mean=self.mean, std=self.std
        )


def _build(
    config: TrainConfig, *, in_channels: int, num_classes: int, input_size, device
) -> tuple[nn.Module, torch.Generator]:
    """The model with its initial weights and the batch-order generator, seeded as a plain
    PyTorch script does: ``torch.manual_seed(seed)``, build the model, then shuffle with the
    stream that follows (the generator starts where the global one stands after the build).

    The global RNG is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(
            config.model,
            in_channels=in_channels,
            num_classes=num_classes,
            input_size=input_size,
            device=device,
            **dict(config.model_args),
        )
        shuffle = torch.Generator()
        shuffle.set_state(torch.get_rng_state())
    return model, shuffle


def train_classifier(
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
    """Train a registered classifier on a training split and save its best epoch.

    Args:
        config: Model, optimiser, schedule, split and augmentation settings.
        dataset: The training split (e.g. ``load_dataset("mnist", split="train")``); a
            fraction ``config.val_fraction`` of it is held out for validation.
        out: ``.safetensors`` checkpoint path; ``OUT.log.jsonl`` and, while running,
            ``OUT.state.pt`` are written beside it.
        resume: Continue an interrupted run from its last finished epoch.
        force: Overwrite an existing ``out`` (and discard an interrupted state).
        progress: tqdm bars on stderr.
        device: Where to train (default: CPU).
        on_epoch_end: Called with each epoch's log record.

    Returns:
        A :class:`TrainResult`. The checkpoint's metadata holds the class names, the
        normalisation, the data fingerprint, and under ``training`` the settings, the
        validation indices, the best epoch and the validation figures (clean accuracy and
        the 11-point scale sweep).

    Raises:
        TypeError: ``dataset`` is not an ImageDataset or ``config`` not a TrainConfig.
        ValueError: a pair model (use :func:`train_pairs`), bad ``out``, or a mismatched
            resume.
        FileExistsError, FileNotFoundError: see ``force`` and ``resume``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset; got {type(dataset).__name__}")
    if config.model == "pair-net":
        raise ValueError("pair-net classifies transformation pairs: train it with train_pairs")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    train_idx, val_idx = split_indices(
        len(dataset), val_fraction=config.val_fraction, seed=config.seed
    )
    mean, std = channel_stats(dataset.images[train_idx])
    c, h, w = dataset.image_shape
    model, shuffle = _build(
        config, in_channels=c, num_classes=dataset.num_classes, input_size=(h, w), device=dev
    )
    task = _ClassifierTask(
        dataset, train_idx, val_idx, config=config, mean=mean, std=std, device=dev
    )
    meta = CheckpointMeta(
        input_shape=(c, h, w),
        class_names=dataset.classes,
        mean=mean,
        std=std,
        data_fingerprint=dataset.fingerprint.to_dict(),
    )
    run_info = {
        "task": "classify",
        "data": dataset.fingerprint.to_dict(),
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
