"""Fixtures of the evaluation tests: the embedded digits, tiny models, saved checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geomrobust.transforms.datasets import (
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
