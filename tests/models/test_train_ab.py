"""``train_classifier`` against a plain PyTorch script of the same recipe, bit for bit.

The script is the recipe as anyone would write it: ``torch.manual_seed(seed)``, build the
model, then per epoch a ``torch.randperm`` from the global generator, batches of
``(x - mean) / std``, mean cross-entropy, Adam, ``StepLR`` stepped per epoch, and the epoch
with the best validation accuracy kept. ``geomrobust train --seed S`` seeds the same way, so
the two must end with equal weights; any drift of the training loop from its recipe (loss
reduction, optimiser or scheduler steps, train/eval mode, selection, seeding) fails here.
``benchmarks/train_ab.py`` runs the same A/B at full length on MNIST.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from geomrobust.models import (
    TrainConfig,
    build_model,
    channel_stats,
    load_checkpoint,
    split_indices,
    train_classifier,
)
from geomrobust.transforms.datasets import load_dataset

N_IMAGES = 256


def _plain_script(ds, *, model_name, seed, epochs, gamma, batch_size=64, lr=1e-3):
    train_idx, val_idx = split_indices(len(ds), val_fraction=0.1, seed=seed)
    x, y = ds.images[train_idx], ds.labels[train_idx]
    vx, vy = ds.images[val_idx], ds.labels[val_idx]
    mean, std = channel_stats(x)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    torch.manual_seed(seed)
    model = build_model(model_name, in_channels=1, num_classes=10, input_size=(28, 28))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    best_acc, best_epoch, best = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(x))
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            loss = F.cross_entropy(model((x[idx] - m) / s), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model((vx - m) / s).argmax(1) == vy).double().mean().item()
        if acc > best_acc:
            best_acc, best_epoch, best = acc, epoch, copy.deepcopy(model.state_dict())
    return best, best_epoch


@pytest.fixture(scope="module")
def digits():
    full = load_dataset("digits", split="train")
    fp = dataclasses.replace(full.fingerprint, n_images=N_IMAGES)
    return dataclasses.replace(
        full, images=full.images[:N_IMAGES], labels=full.labels[:N_IMAGES], fingerprint=fp
    )


@pytest.mark.parametrize("model_name", ["mnist-cnn", "mnist-cnn-dcnv2"])
def test_train_equals_the_plain_script(digits, model_name, tmp_path):
    seed, epochs = 3, 3
    config = TrainConfig(model=model_name, epochs=epochs, step_gamma=0.7, seed=seed)
    before = torch.get_rng_state()
    result = train_classifier(config, digits, out=tmp_path / "m.safetensors", progress=False)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left as it was
    suite, _ = load_checkpoint(result.checkpoint)
    plain, best_epoch = _plain_script(
        digits, model_name=model_name, seed=seed, epochs=epochs, gamma=0.7
    )
    assert result.best_epoch == best_epoch
    state = suite.state_dict()
    assert list(state) == list(plain)
    for name, tensor in plain.items():
        assert torch.equal(state[name], tensor), name


def test_another_seed_gives_other_weights(digits, tmp_path):
    out = {}
    for seed in (0, 1):
        config = TrainConfig(model="mnist-cnn", epochs=1, seed=seed)
        result = train_classifier(
            config, digits, out=tmp_path / f"s{seed}.safetensors", progress=False
        )
        out[seed] = load_checkpoint(result.checkpoint)[0].state_dict()["conv1.weight"]
    assert not torch.equal(out[0], out[1])
