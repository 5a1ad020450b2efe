"""Where a model runs, and what it runs with: shared by the image and the pair evaluation."""

from __future__ import annotations

import platform
from typing import Any

import torch
from torch import nn

from geomrobust.robustness._eval_errors import EvalInputError

__all__ = ["model_device_dtype", "versions"]


def model_device_dtype(model: nn.Module, device: Any) -> tuple[torch.device, torch.dtype]:
    """The model's device and floating dtype; a requested other device is an error."""
    tensors = [*model.parameters(), *model.buffers()]
    floating = [t for t in tensors if t.is_floating_point()]
    own = tensors[0].device if tensors else torch.device("cpu")
    dtype = floating[0].dtype if floating else torch.float32
    if device is not None:
        wanted = torch.device(device)
        if wanted.type != own.type or (wanted.index is not None and wanted != own):
            raise EvalInputError(
                f"the model is on {own} but device={str(wanted)!r} was asked; move it first "
                f"with model.to({str(wanted)!r}) (evaluate never moves a caller's model)"
            )
    return own, dtype


def versions() -> dict[str, str]:
    from geomrobust import __version__

    return {
        "geomrobust": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def model_in_channels(model: nn.Module) -> int | None:
    """The input channels a model takes: its ``in_channels`` attribute, else those of its
    first ``Conv2d`` (torchvision and timm models); ``None`` if neither tells."""
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int):
        return channels
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None
