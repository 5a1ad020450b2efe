"""Turn ``--checkpoint CKPT|ref:NAME [--model NAME]`` into a model ready to evaluate.

Checkpoint errors (:class:`geomrobust.models.CheckpointError`) keep their messages, which already
name the file and the fix; this module adds what only the evaluation knows: the dataset's
channels and classes, the normalisation to use, and what had to be assumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geomrobust.robustness._eval_errors import EvalInputError
from geomrobust.robustness._results import ModelRecord
from geomrobust.robustness._runtime import model_in_channels
from geomrobust.transforms.datasets import (
    FolderDataset,
    ImageDataset,
    file_sha256,
    load_image_folder,
)

__all__ = ["LoadedModel", "load_for_eval", "load_for_folder", "resolve_checkpoint_path"]

log = logging.getLogger("geomrobust.eval")

REF_PREFIX = "ref:"


def resolve_checkpoint_path(spec: str | os.PathLike[str]) -> Path:
    """A path for ``spec``: a file path, or ``ref:NAME`` (a shipped reference, resolved by
    :func:`geomrobust.models.resolve_ref`).

    Raises:
        EvalInputError: an unknown ``ref:`` name (the message lists the shipped ones).
    """
    text = os.fspath(spec)
    if not text.startswith(REF_PREFIX):
        return Path(text)
    from geomrobust.models import resolve_ref

    try:
        return resolve_ref(text)
    except ValueError as exc:
        raise EvalInputError(f"{exc} Or pass a checkpoint file path instead.") from None


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready for :func:`geomrobust.robustness.evaluate`, and what is recorded about it.

    Attributes:
        model: The model, on the requested device, in eval mode.
        record: Name, parameter count, checkpoint and its sha256, normalisation.
        assumptions: What was assumed rather than read from the checkpoint.
        num_inputs: Images per sample the model takes (2 for ``pair-net``); ``None`` for
            an architecture outside the registry.
        training: The training settings recorded in the checkpoint (may be empty).
    """

    model: nn.Module
    record: ModelRecord
    assumptions: tuple[str, ...]
    num_inputs: int | None
    training: Mapping[str, Any] = field(default_factory=dict)


def load_for_eval(
    checkpoint: str | os.PathLike[str],
    *,
    data: ImageDataset,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: torch.device | str | None = None,
    pairs: bool = False,
) -> LoadedModel:
    """Load a checkpoint for evaluation on ``data``.

    Args:
        checkpoint: A ``.safetensors``/``.pt`` path or ``ref:NAME``.
        data: The split it will be evaluated on (channels and classes are checked).
        model: Registry name, ``torchvision:NAME``, ``timm:NAME`` or
            ``package.module:factory``, for files without metadata or to override it.
        model_args: Build arguments for ``model`` (e.g. ``{"num_classes": 10}`` for a
            torchvision or timm architecture, whose default is 1000 classes); recorded.
        mean, std: Normalisation overriding the checkpoint's (both or neither).
        device: Where to build the model.
        pairs: Load a transformation-pair classifier: its classes are pair classes, not
            the dataset's, so they are not checked against ``data``.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        models.CheckpointError: missing, corrupt or mismatched checkpoint.
        EvalInputError: channels or class names that disagree with the data, unknown
            ``ref:`` name, or only one of mean/std.
        ValueError: an unknown ``torchvision:``/``timm:`` name, or timm not installed.
    """
    from geomrobust.models import load_checkpoint

    path = resolve_checkpoint_path(checkpoint)
    expected = None if pairs else data.num_classes
    net, meta = load_checkpoint(
        path, model=model, model_args=model_args, num_classes=expected, device=device
    )
    return _describe(
        checkpoint,
        path,
        net,
        meta,
        data=data,
        model=model,
        model_args=model_args,
        mean=mean,
        std=std,
        pairs=pairs,
    )


def load_for_folder(
    checkpoint: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str],
    class_map: Mapping[str, int] | str | os.PathLike[str] | None = None,
    grey: bool = False,
    skip_unreadable: bool = False,
    max_images: int | None = None,
    fingerprint: str = "content",
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: torch.device | str | None = None,
) -> tuple[FolderDataset, LoadedModel]:
    """Load a checkpoint, then list an image folder for it.

    The model comes first because the folder depends on it: its class names (when the
    checkpoint records them) match the class folders by name, and its input channels say
    whether images are decoded as RGB or grey.

    Args:
        checkpoint, model, model_args, mean, std, device: As for :func:`load_for_eval`.
        root, class_map, grey, skip_unreadable, max_images, fingerprint: As for
            :func:`geomrobust.transforms.datasets.load_image_folder`.

    Returns:
        ``(data, loaded)``.

    Raises:
        models.CheckpointError: missing, corrupt or mismatched checkpoint.
        DatasetError: as for ``load_image_folder``.
        EvalInputError: the model's class count differs from the class folders' (without
            ``class_map``), or as for :func:`load_for_eval`.
    """
    from geomrobust.models import load_checkpoint

    path = resolve_checkpoint_path(checkpoint)
    net, meta = load_checkpoint(path, model=model, model_args=model_args, device=device)
    channels = meta.input_shape[0] if meta.input_shape else model_in_channels(net)
    data = load_image_folder(
        root,
        classes=meta.class_names if class_map is None else None,
        class_map=class_map,
        channels=1 if channels == 1 else 3,
        grey=grey,
        skip_unreadable=skip_unreadable,
        max_images=max_images,
        fingerprint=fingerprint,
    )
    outputs = meta.num_classes or getattr(net, "num_classes", None)
    if class_map is None and isinstance(outputs, int) and outputs != data.num_classes:
        raise EvalInputError(
            f"checkpoint {checkpoint} predicts {outputs} classes but {data.root} has "
            f"{data.num_classes} class folders; pass class_map=FILE to map the folders to the "
            "model's outputs (a subset of its classes), or use a checkpoint trained on them"
        )
    loaded = _describe(
        checkpoint,
        path,
        net,
        meta,
        data=data,
        model=model,
        model_args=model_args,
        mean=mean,
        std=std,
        pairs=False,
        outputs=outputs if class_map is not None else None,
    )
    return data, loaded


# What a training run's record holds beyond its recipe: the seed and what follows from the seed
# (the split, the selected epoch, the figures), from the machine (times, threads), and the
# figures of the same recipe's other seeds that a reference file lists; and which deformable
# kernel ran, which rounds differently but is not part of the recipe.
_NOT_RECIPE = frozenset(
    (
        "seed",
        "split",
        "best_epoch",
        "epochs_run",
        "wall_time_s",
        "threads",
        "deform_kernel",
        "validation",
        "other_seeds",
    )
)


def training_identity(training: Mapping[str, Any]) -> dict[str, Any]:
    """``training_seed`` and ``training_recipe`` of a checkpoint's training record.

    The recipe is the sha256 of the record's settings (model, optimiser, schedule, data,
    augmentation...) without the seed and what follows from it; two checkpoints with the
    same recipe and different seeds are two training runs of one model.
    """
    seed = training.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return {"training_seed": None, "training_recipe": None}
    recipe = {k: v for k, v in training.items() if k not in _NOT_RECIPE}
    text = json.dumps(recipe, sort_keys=True, default=str)
    return {"training_seed": seed, "training_recipe": hashlib.sha256(text.encode()).hexdigest()}


def _describe(
    checkpoint, path, net, meta, *, data, model, model_args, mean, std, pairs, outputs=None
) -> LoadedModel:
    """Check a loaded model against ``data`` and record what it is and what was assumed."""
    from geomrobust.models import count_params, get_model_info, list_models

    expected = None if pairs else data.num_classes
    assumptions: list[str] = []
    trained_on = (meta.data_fingerprint or {}).get("dataset")
    if isinstance(trained_on, str) and trained_on != data.name:
        log.warning(
            "warning: %s was trained on %r but is evaluated on %r: the two datasets may differ "
            "in style and preprocessing, so accuracy is not the model's own-data accuracy",
            checkpoint,
            trained_on,
            data.name,
        )
    has_meta = meta.class_names is not None or meta.mean is not None
    c = data.channels
    channels = meta.input_shape[0] if meta.input_shape else getattr(net, "in_channels", None)
    if channels is None and (meta.model_name or "").startswith(("torchvision:", "timm:")):
        channels = model_in_channels(net)
    if isinstance(channels, int) and channels != c:
        raise EvalInputError(
            f"checkpoint {checkpoint} takes {channels} input channel(s) but dataset "
            f"{data.name!r} has {c}; use a checkpoint trained on this dataset"
        )
    mapped = getattr(data, "output_index", None) is not None
    if not pairs and not mapped and meta.class_names is not None:
        if tuple(meta.class_names) != tuple(data.classes):
            raise EvalInputError(
                f"checkpoint {checkpoint} was trained on classes {list(meta.class_names)[:5]}... "
                f"but dataset {data.name!r} has {list(data.classes)[:5]}...; use a checkpoint "
                "trained on this dataset"
            )
    elif meta.class_names is None and not pairs and not mapped:
        assumptions.append(
            f"class count and names taken from the dataset ({data.num_classes}: "
            f"{', '.join(data.classes[:3])}, ...): the checkpoint does not record them"
        )
    if (mean is None) != (std is None):
        raise EvalInputError("mean and std must be given together (or neither)")
    if mean is not None:
        norm_mean, norm_std, source = tuple(mean), tuple(std or ()), "user"
        if meta.mean is not None and (tuple(meta.mean), tuple(meta.std or ())) != (
            norm_mean,
            norm_std,
        ):
            assumptions.append(
                f"normalisation mean={list(norm_mean)}, std={list(norm_std)} given by the user "
                f"overrides the checkpoint's mean={list(meta.mean)}, std={list(meta.std or ())}"
            )
    elif meta.mean is not None:
        norm_mean, norm_std, source = meta.mean, meta.std, "checkpoint"
    else:
        norm_mean = norm_std = None
        source = "none"
        assumptions.append(
            "the model gets images in [0, 1] (no normalisation): the checkpoint records no "
            "mean/std and none was given"
        )
    if not has_meta and meta.model_name is None:
        assumptions.append("architecture given by the user (the checkpoint does not record it)")
    name = meta.model_name or model or type(net).__name__
    num_inputs = None
    if name in list_models():
        try:
            num_inputs = get_model_info(name, **dict(meta.model_args)).num_inputs
        except (TypeError, ValueError):
            num_inputs = None
    for note in assumptions:
        log.info("assumed: %s", note)
    record = ModelRecord(
        name=name,
        params=count_params(net),
        checkpoint=os.fspath(checkpoint),
        checkpoint_sha256=file_sha256(path),
        num_classes=outputs
        if outputs is not None
        else (expected if expected is not None else getattr(net, "num_classes", None)),
        class_names=tuple(meta.class_names)
        if meta.class_names
        else (None if pairs else tuple(data.classes)),
        mean=norm_mean,
        std=norm_std,
        normalisation_source=source,
        model_args=dict(model_args or {}),
        checkpoint_unwrapped=tuple(meta.unwrapped),
        **training_identity(meta.training),
    )
    for note in meta.unwrapped:
        log.info("checkpoint %s: removed the %s to load it", checkpoint, note)
    return LoadedModel(net, record, tuple(assumptions), num_inputs, dict(meta.training))
