"""Shipped reference checkpoints: listed, resolvable, small, and they classify their own
validation images as their metadata says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geomrobust.models import (
    evaluate_accuracy,
    evaluate_pairs,
    list_refs,
    load_checkpoint,
    resolve_ref,
)
from geomrobust.models._refs import REFS
from geomrobust.models._train_config import derive_seed
from geomrobust.models._train_pairs import _subset
from geomrobust.transforms.datasets import PairConfig, TransformPairs, load_dataset

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ROOTS = {"mnist": DATA / "mnist-train", "cifar10": DATA / "cifar10-train"}
REFS_SHIPPED = list_refs()


def test_list_and_resolve():
    names = [r.name for r in REFS_SHIPPED]
    assert names == [n for n in REFS if n in names]  # REFS order
    for ref in REFS_SHIPPED:
        assert resolve_ref("ref:" + ref.name) == ref.path == resolve_ref(ref.name)
        record = ref.to_dict()
        assert record["ref"] == "ref:" + ref.name
        assert record["data_fingerprint"]["split"] == "train"
        assert 0.0 <= record["validation"]["accuracy"] <= 1.0
    with pytest.raises(
        ValueError,
        match=r"unknown reference checkpoint 'ref:mnist-cn'.*"
        r"Did you mean 'ref:mnist-cnn'\?",
    ):
        resolve_ref("ref:mnist-cn")
    with pytest.raises(TypeError, match="reference name must be a str"):
        resolve_ref(3)


@pytest.mark.filterwarnings("ignore::transforms.datasets.ChecksumWarning")
@pytest.mark.parametrize("ref", REFS_SHIPPED, ids=lambda r: r.name)
def test_shipped_ref_is_small_and_classifies_its_validation_images(ref):
    assert ref.size_bytes < 2_000_000
    fingerprint = ref.data_fingerprint
    root = ROOTS.get(fingerprint["dataset"])
    if root is not None and not root.is_dir():
        pytest.skip(f"training data not here: {root}")
    dataset = load_dataset(fingerprint["dataset"], split="train", root=root)
    assert dataset.fingerprint.images_sha256 == fingerprint["images_sha256"]
    model, meta = load_checkpoint(resolve_ref(ref.name), num_classes=None)
    training = meta.training
    val_idx = torch.tensor(training["split"]["val_indices"])
    assert len(val_idx) == training["split"]["n_val"]
    if training["task"] == "pairs":
        cfg = training["pair_config"]
        pairs = TransformPairs(
            _subset(dataset, val_idx, part="validation"),
            training["val_pairs"],
            config=PairConfig(num_classes=cfg["num_classes"]),
            generator=derive_seed(training["seed"], 6),
        )
        a, b, y, _ = pairs.batch(range(len(pairs)))
        got = evaluate_pairs(
            model, a, b, y, mean=meta.mean, std=meta.std, num_classes=cfg["num_classes"]
        )
    else:
        images, labels = dataset.images[val_idx], dataset.labels[val_idx]
        got = {"accuracy": evaluate_accuracy(model, images, labels, mean=meta.mean, std=meta.std)}
        assert got["accuracy"] > 0.4  # far above chance (0.1)
    # The same figure as recorded at training time (up to float summation order).
    assert got["accuracy"] == pytest.approx(ref.validation["accuracy"], abs=0.003)
