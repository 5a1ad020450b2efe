"""Training: tiny models on a slice of the embedded ``digits`` set, one or two epochs."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from geomrobust.cli import build_parser
from geomrobust.cli._errors import UsageError
from geomrobust.models import (
    AugmentSpec,
    TrainConfig,
    load_checkpoint,
    log_path,
    parse_augment,
    split_indices,
    state_path,
    train_classifier,
    train_pairs,
)
from geomrobust.transforms.datasets import load_dataset

N_IMAGES = 192


@pytest.fixture(scope="module")
def digits():
    """The first ``N_IMAGES`` training digits (a valid ImageDataset with its own count)."""
    full = load_dataset("digits", split="train")
    fp = dataclasses.replace(full.fingerprint, n_images=N_IMAGES)
    return dataclasses.replace(
        full, images=full.images[:N_IMAGES], labels=full.labels[:N_IMAGES], fingerprint=fp
    )


@pytest.fixture(autouse=True)
def one_thread():
    """Results are reproducible for a given thread count; one is also the fastest here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(**kw) -> TrainConfig:
    base = {"model": "mnist-cnn", "epochs": 1, "batch_size": 32, "seed": 3}
    return TrainConfig(**{**base, **kw})


def _weights(path):
    return load_file(str(path))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- augmentation parsing -------------------------------------------------------------


def test_parse_augment_values():
    spec = parse_augment("scale=0.5:1.5, rotation=-30:30,shift=-2:2")
    assert spec == AugmentSpec(scale=(0.5, 1.5), angle_deg=(-30.0, 30.0), shift_px=(-2.0, 2.0))
    assert parse_augment("rotation=-10:10").scale == (1.0, 1.0)
    assert parse_augment(None) is None
    assert parse_augment("none") is None
    assert parse_augment("scale=1:1") is None  # the identity is no augmentation


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("zoom=0.5:1.5", r"^augment: expected KEY=LOW:HIGH .*\['scale', 'rotation', 'shift'\]"),
        ("scale", r"got 'scale'"),
        ("scale=0.5", r"scale must be LOW:HIGH, two numbers \(e.g. scale=0.5:1.5\); got '0.5'"),
        ("rotation=a:b", r"rotation must be LOW:HIGH"),
        ("scale=1.5:0.5", r"needs finite LOW <= HIGH; got '1.5:0.5' \(write scale=0.5:1.5\?\)"),
        ("scale=0:1", r"scale factors must be > 0"),
        ("scale=0.5:1,scale=1:2", r"'scale' is given twice"),
    ],
)
def test_parse_augment_errors(text, match):
    with pytest.raises(ValueError, match=match):
        parse_augment(text)


def test_augment_is_keyed_by_index_and_epoch():
    spec = AugmentSpec(scale=(0.5, 1.5), angle_deg=(-30, 30))
    images = torch.rand(4, 1, 12, 12)
    idx = torch.tensor([5, 9, 2, 7])
    a = spec.apply(images, idx, seed=1, epoch=0)
    b = spec.apply(images.flip(0), idx.flip(0), seed=1, epoch=0).flip(0)
    torch.testing.assert_close(a, b)  # order of the batch does not matter
    assert not torch.equal(a, spec.apply(images, idx, seed=1, epoch=1))


# --- config and split -----------------------------------------------------------------


def test_split_is_fixed_disjoint_and_seeded():
    train, val = split_indices(100, val_fraction=0.1, seed=0)
    assert len(val) == 10
    assert len(train) == 90
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    again = split_indices(100, val_fraction=0.1, seed=0)
    assert torch.equal(val, again[1])
    assert not torch.equal(val, split_indices(100, val_fraction=0.1, seed=1)[1])
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\); got 1.0"):
        split_indices(100, val_fraction=1.0, seed=0)
    with pytest.raises(ValueError, match="need at least 2 training images"):
        split_indices(1, val_fraction=0.5, seed=0)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"epochs": 0}, ValueError, r"TrainConfig.epochs must be >= 1; got 0"),
        ({"batch_size": 2.0}, TypeError, r"TrainConfig.batch_size must be an int"),
        ({"lr": 0.0}, ValueError, r"TrainConfig.lr must be > 0.0"),
        ({"val_fraction": 0.0}, ValueError, r"val_fraction must be in \(0.0, 1.0\)"),
        ({"step_gamma": 1.5}, ValueError, r"step_gamma must be in \(0, 1\]"),
        ({"augment": "scale=0.5:1.5"}, TypeError, r"augment must be an AugmentSpec or None"),
        ({"pair_classes": 6}, ValueError, r"pair_classes must be 7, 8 or None; got 6"),
    ],
)
def test_config_errors(kw, error, match):
    with pytest.raises(error, match=match):
        _config(**kw)


# --- training -------------------------------------------------------------------------


def test_one_epoch_writes_checkpoint_log_and_metadata(digits, tmp_path):
    out = tmp_path / "m.safetensors"
    before = torch.get_rng_state()
    result = train_classifier(
        _config(step_gamma=0.7, augment=parse_augment("scale=0.8:1.2")),
        digits,
        out=out,
        progress=False,
    )
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    assert result.checkpoint == out
    assert out.is_file()
    assert not state_path(out).exists()  # removed once the run is finished
    records = [json.loads(line) for line in log_path(out).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    assert {"train_loss", "train_accuracy", "val_accuracy", "lr", "best_epoch"} <= set(records[0])

    model, meta = load_checkpoint(out)
    assert meta.model_name == "mnist-cnn"
    assert meta.class_names == digits.classes
    assert meta.data_fingerprint == digits.fingerprint.to_dict()
    assert len(meta.mean) == len(meta.std) == 1
    training = meta.training
    assert training["best_epoch"] == result.best_epoch == 1
    assert training["scheduler"] == {"name": "step", "step_size": 1, "gamma": 0.7}
    assert training["augment"]["scale"] == [0.8, 1.2]
    val_idx = training["split"]["val_indices"]
    assert val_idx == split_indices(N_IMAGES, val_fraction=0.1, seed=3)[1].tolist()
    val = training["validation"]
    assert val["scales"] == pytest.approx([0.5 + 0.1 * i for i in range(11)])
    assert len(val["scale_accuracy"]) == 11
    assert val["accuracy"] == val["scale_accuracy"][5] == result.validation["accuracy"]
    assert val["mean_scale_accuracy"] == pytest.approx(sum(val["scale_accuracy"]) / 11)
    assert not model.training
    assert "deform_kernel" not in training  # no deformable blocks


def test_a_twins_record_names_its_deformable_kernel_outside_the_recipe(digits, tmp_path):
    from geomrobust.models import deform_kernels
    from geomrobust.robustness._checkpoints import training_identity

    out = tmp_path / "twin.safetensors"
    train_classifier(_config(model="mnist-cnn-dcnv2", epochs=1), digits, out=out, progress=False)
    model, meta = load_checkpoint(out)
    kernel = deform_kernels(model, torch.device("cpu"), torch.float32)
    assert meta.training["deform_kernel"] == kernel
    assert kernel in ("compiled", "python")
    other = {**meta.training, "deform_kernel": "python" if kernel == "compiled" else "compiled"}
    assert training_identity(other) == training_identity(meta.training)


def test_same_seed_same_weights(digits, tmp_path):
    runs = [
        train_classifier(_config(seed=s), digits, out=tmp_path / f"{i}.safetensors", progress=False)
        for i, s in enumerate((5, 5, 6))
    ]
    a, b, c = (_weights(r.checkpoint) for r in runs)
    assert _same(a, b)
    assert not _same(a, c)


def test_resume_continues_and_matches_uninterrupted_run(digits, tmp_path):
    config = _config(epochs=2, step_gamma=0.5, augment=parse_augment("rotation=-20:20"))
    full = train_classifier(config, digits, out=tmp_path / "full.safetensors", progress=False)

    out = tmp_path / "cut.safetensors"

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(config, digits, out=out, progress=False, on_epoch_end=interrupt)
    assert state_path(out).is_file()
    assert not out.exists()
    assert len(log_path(out).read_text().splitlines()) == 1
    with pytest.raises(FileExistsError, match=r"holds an interrupted run; pass resume=True"):
        train_classifier(config, digits, out=out, progress=False)
    with pytest.raises(ValueError, match=r"other settings or data \(\['lr'\]\)"):
        train_classifier(
            dataclasses.replace(config, lr=0.01), digits, out=out, resume=True, progress=False
        )
    seen = []
    resumed = train_classifier(
        config, digits, out=out, resume=True, progress=False, on_epoch_end=seen.append
    )
    assert [r["epoch"] for r in seen] == [2]  # only the missing epoch ran
    assert resumed.epochs_run == 2
    assert _same(_weights(out), _weights(full.checkpoint))
    assert resumed.validation == full.validation
    records = [json.loads(line) for line in log_path(out).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in full.history]


def test_force_is_needed_to_overwrite(digits, tmp_path):
    out = tmp_path / "m.safetensors"
    train_classifier(_config(), digits, out=out, progress=False)
    first = _weights(out)
    with pytest.raises(FileExistsError, match=r"already exists; pass force=True"):
        train_classifier(_config(), digits, out=out, progress=False)
    with pytest.raises(FileNotFoundError, match=r"nothing to resume: .* does not exist"):
        train_classifier(
            _config(), digits, out=tmp_path / "x.safetensors", resume=True, progress=False
        )
    with pytest.raises(ValueError, match=r"out must end in .safetensors"):
        train_classifier(_config(), digits, out=tmp_path / "m.pt", progress=False)
    train_classifier(_config(seed=9), digits, out=out, force=True, progress=False)
    assert not _same(first, _weights(out))


def test_pairs_one_epoch(digits, tmp_path):
    config = TrainConfig(
        model="pair-net",
        epochs=1,
        batch_size=32,
        pair_classes=8,
        pairs_per_epoch=64,
        val_pairs=40,
        seed=1,
    )
    result = train_pairs(config, digits, out=tmp_path / "p.safetensors", progress=False)
    val = result.validation
    assert next(iter(val["per_class"])) == "none"
    assert len(val["per_class"]) == 8
    assert val["min_class_accuracy"] == min(val["per_class"].values())
    model, meta = load_checkpoint(result.checkpoint)
    assert meta.class_names[-1] == "all"
    assert meta.training["pair_config"]["num_classes"] == 8
    x = torch.rand(2, 1, 28, 28)
    assert model(x, x).shape == (2, 8)
    with pytest.raises(ValueError, match=r"train_pairs trains 'pair-net'; got model"):
        train_pairs(_config(), digits, out=tmp_path / "q.safetensors")
    with pytest.raises(ValueError, match=r"pair-net classifies transformation pairs"):
        train_classifier(config, digits, out=tmp_path / "q.safetensors")


# --- the command ----------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_cli_train_and_usage_errors(tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    common = ["--dataset", "digits", "--epochs", "1", "--threads", "1", "--no-progress"]
    args = _parse(
        "train",
        "--model",
        "mnist-cnn",
        *common,
        "--step-gamma",
        "0.7",
        "--augment",
        "scale=0.9:1.1",
        "--out",
        str(out),
    )
    assert args.handler(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert out.is_file()
    _, meta = load_checkpoint(out)
    assert meta.training["epochs"] == 1
    assert meta.training["augment"]["scale"] == [0.9, 1.1]

    again = _parse("train", "--model", "mnist-cnn", *common, "--out", str(out))
    with pytest.raises(UsageError, match=r"already exists; pass --force"):
        again.handler(again)
    bad = {
        "--augment": ("zoom=1:2", r"--augment: expected KEY=LOW:HIGH"),
        "--val-fraction": ("1.5", r"--val-fraction must be in \(0, 1\), e.g. 0.1; got 1.5"),
        "--model-args": ("[1]", r"--model-args must be a JSON object"),
        "--step-gamma": ("2", r"--step-gamma must be in \(0, 1\]"),
    }
    for flag, (value, match) in bad.items():
        a = _parse("train", "--model", "mnist-cnn", *common, flag, value, "--out", str(out))
        with pytest.raises(UsageError, match=match):
            a.handler(a)
    a = _parse("train", "--model", "mnist-cnnn", *common, "--out", str(tmp_path / "n.safetensors"))
    with pytest.raises(UsageError, match=r"unknown model 'mnist-cnnn'"):
        a.handler(a)
    a = _parse("train-pairs", "--dataset", "mnist", "--out", str(tmp_path / "p.safetensors"))
    with pytest.raises(UsageError, match=r"--data-root"):
        a.handler(a)


def test_cli_train_pairs_and_resume_flags(tmp_path, capsys):
    out = tmp_path / "pairs.safetensors"
    common = ["--dataset", "digits", "--epochs", "1", "--threads", "1", "--no-progress"]
    args = _parse(
        "train-pairs",
        *common,
        "--pairs-per-epoch",
        "32",
        "--val-pairs",
        "16",
        "--classes",
        "8",
        "--out",
        str(out),
    )
    assert args.handler(args) == 0
    assert "worst class" in capsys.readouterr().out
    _, meta = load_checkpoint(out)
    assert meta.model_args["encoder"] == "mnist-cnn"
    assert meta.num_classes == 8
    # A job script rerunning a finished run with --resume succeeds and changes nothing.
    before = out.read_bytes()
    again = _parse("train-pairs", *common, "--resume", "--out", str(out))
    assert again.handler(again) == 0
    assert capsys.readouterr().out == (
        f"{out} is already complete; nothing to resume (pass --force to train again)\n"
    )
    assert out.read_bytes() == before
    both = _parse("train-pairs", *common, "--resume", "--force", "--out", str(out))
    with pytest.raises(UsageError, match=r"--resume continues a run and --force restarts it"):
        both.handler(both)
    few = _parse("train-pairs", *common, "--val-pairs", "5", "--out", str(out))
    with pytest.raises(UsageError, match=r"--val-pairs must be >= --classes \(7\)"):
        few.handler(few)
