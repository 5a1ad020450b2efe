"""Fixtures of the evaluation tests: the embedded digits, tiny models, saved checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geomrobust.models import CheckpointMeta, build_model, save_checkpoint
from geomrobust.transforms.datasets import (
    DIGITS_CLASSES,
    ImageDataset,
    load_dataset,
)


def subset(data: ImageDataset, n: int) -> ImageDataset:
    """The first ``n`` images of ``data`` with a fingerprint of their own."""
    return data.head(n)


class TinyNet(nn.Module):
    """A random conv + linear classifier whose predictions vary from image to image."""

    in_channels = 1

    def __init__(self, seed: int = 0, num_classes: int = 10) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 5, stride=2)
        self.fc = nn.Linear(4 * 12 * 12, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).relu().flatten(1))


@pytest.fixture(scope="session")
def digits() -> ImageDataset:
    return load_dataset("digits", split="test")


@pytest.fixture(scope="session")
def small(digits) -> ImageDataset:
    return subset(digits, 60)


@pytest.fixture
def tiny() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory):
    """Saved checkpoints: an mnist-cnn with metadata, its plain state dict, odd ones."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model("mnist-cnn")
    meta = CheckpointMeta(class_names=DIGITS_CLASSES, mean=(0.13,), std=(0.31,))
    save_checkpoint(folder / "cnn.safetensors", model, meta=meta)
    torch.save(model.state_dict(), folder / "plain.pt")
    save_checkpoint(folder / "rgb.safetensors", build_model("mnist-cnn", in_channels=3))
    save_checkpoint(folder / "seven.safetensors", build_model("mnist-cnn", num_classes=7))
    save_checkpoint(folder / "pairs.safetensors", build_model("pair-net"))
    good = (folder / "cnn.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (folder / "garbage.pt").write_bytes(b"not a checkpoint at all")
    return folder
