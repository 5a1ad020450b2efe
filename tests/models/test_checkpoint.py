"""Checkpoints: bit-exact round trips, safe loading, and one test per error."""

from __future__ import annotations

import json
import pathlib
import pickle
import sys
import textwrap

import pytest
import safetensors
import torch
from safetensors.torch import save_file
from torch import nn

from geomrobust.models import (
    FORMAT_VERSION,
    CheckpointClassCountError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointMeta,
    CheckpointMetadataError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from geomrobust.models._meta import package_version

FINGERPRINT = {"dataset": "digits", "split": "train", "n_images": 1437}
TRAINING = {"epochs": 3, "lr": 0.01, "optimizer": "sgd", "seed": 0}


def _meta(**overrides) -> CheckpointMeta:
    fields = {
        "class_names": tuple(str(d) for d in range(10)),
        "mean": (0.1307,),
        "std": (0.3081,),
        "data_fingerprint": FINGERPRINT,
        "training": TRAINING,
    }
    return CheckpointMeta(**{**fields, **overrides})


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random values everywhere (offsets included), so that nothing is at its init value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(
    ("name", "options", "weights_dtype"),
    [
        ("mnist-cnn-dcnv2", {"offset_bound_frac": 0.25}, torch.float32),
        ("mnist-cnn", {}, torch.float64),
        ("resnet18-cifar", {"deformable_stages": (4,), "in_channels": 1}, torch.float32),
        ("pair-net", {"encoder": "mnist-cnn-dcnv2"}, torch.float32),
    ],
)
def test_round_trip_is_bit_exact(tmp_path, name, options, weights_dtype):
    model = _perturbed(build_model(name, dtype=weights_dtype, **options))
    if name.startswith("resnet"):  # non-trivial BatchNorm statistics too
        model.train()
        model(torch.rand(4, 1, 32, 32, dtype=weights_dtype))
    model.eval()
    classes = 7 if name == "pair-net" else 10
    meta = _meta(class_names=tuple(f"c{i}" for i in range(classes)))
    path = save_checkpoint(tmp_path / "sub" / "model.safetensors", model, meta=meta)
    assert path == tmp_path / "sub" / "model.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]

    loaded, loaded_meta = load_checkpoint(path, dtype=weights_dtype)
    assert type(loaded) is type(model)
    assert not loaded.training
    _assert_same_state(model, loaded)
    info_inputs = 2 if name == "pair-net" else 1
    x = torch.rand(2, *loaded_meta.input_shape, dtype=weights_dtype)
    with torch.no_grad():
        assert torch.equal(loaded(*[x] * info_inputs), model(*[x] * info_inputs))

    assert loaded_meta.model_name == name
    assert loaded_meta.model_args["num_classes"] == classes
    assert loaded_meta.class_names == meta.class_names
    assert loaded_meta.num_classes == classes
    assert (loaded_meta.mean, loaded_meta.std) == ((0.1307,), (0.3081,))
    assert dict(loaded_meta.data_fingerprint) == FINGERPRINT
    assert dict(loaded_meta.training) == TRAINING
    assert loaded_meta.package_version == package_version()
    assert loaded_meta.format_version == FORMAT_VERSION


def test_metadata_entries_are_json_strings(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("mnist-cnn"), meta=_meta())
    with safetensors.safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    assert json.loads(metadata["geomrobust.model_name"]) == "mnist-cnn"
    assert json.loads(metadata["geomrobust.model_args"]) == {
        "in_channels": 1,
        "num_classes": 10,
        "input_size": [28, 28],
    }
    assert json.loads(metadata["geomrobust.input_shape"]) == [1, 28, 28]
    assert json.loads(metadata["geomrobust.training"]) == TRAINING
    assert len(metadata["geomrobust.weights_sha256"]) == 64


def test_load_on_device_and_into_a_given_module(tmp_path, device):
    model = _perturbed(build_model("mnist-cnn"))
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta=_meta())
    loaded, _ = load_checkpoint(path, device=device)
    assert {p.device.type for p in loaded.parameters()} == {torch.device(device).type}
    target = build_model("mnist-cnn", dtype=torch.float64)
    same, meta = load_checkpoint(path, model=target)
    assert same is target
    assert target.conv1.weight.dtype == torch.float64
    assert meta.class_names == _meta().class_names
    torch.testing.assert_close(target.conv1.weight.float(), model.conv1.weight, rtol=0, atol=0)
    with pytest.raises(TypeError, match="device apply only when load_checkpoint builds the model"):
        load_checkpoint(path, model=target, device="cpu")


def test_plain_state_dict_pt_loads_with_a_registry_name(tmp_path):
    model = _perturbed(build_model("cifar-small", num_classes=4))
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    loaded, meta = load_checkpoint(path, model="cifar-small", num_classes=4)
    _assert_same_state(model, loaded)
    assert meta.model_name == "cifar-small"
    assert meta.input_shape == (3, 32, 32)
    assert meta.class_names is None
    with pytest.raises(
        CheckpointMetadataError, match=r"does not say which architecture .*model=.NAME."
    ):
        load_checkpoint(path)


def test_wrapped_and_dataparallel_state_dicts_load(tmp_path):
    model = _perturbed(build_model("mnist-cnn"))
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "w.pt")
    loaded, _ = load_checkpoint(tmp_path / "w.pt", model="mnist-cnn")
    _assert_same_state(model, loaded)


def test_legacy_torch_format_loads(tmp_path):
    model = _perturbed(build_model("mnist-cnn"))
    torch.save(model.state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    loaded, _ = load_checkpoint(tmp_path / "old.pth", model="mnist-cnn")
    _assert_same_state(model, loaded)


def test_foreign_safetensors_needs_a_model(tmp_path):
    model = _perturbed(build_model("mnist-cnn"))
    save_file(model.state_dict(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointMetadataError, match="pass model='NAME' with a registry name"):
        load_checkpoint(tmp_path / "plain.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "plain.safetensors", model="mnist-cnn")
    _assert_same_state(model, loaded)


class _TouchOnLoad:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _TouchOnLoad(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*evil\.pt.*nothing was run"):
        load_checkpoint(path, model="mnist-cnn")
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler would have run it.
    proof = tmp_path / "proof"
    torch.save(_TouchOnLoad(proof), tmp_path / "proof.pt")
    torch.load(tmp_path / "proof.pt", weights_only=False)
    assert proof.exists()


def test_whole_model_pickle_is_refused(tmp_path):
    torch.save(build_model("mnist-cnn"), tmp_path / "whole.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"pickles Python objects other than tensors"):
        load_checkpoint(tmp_path / "whole.pt", model="mnist-cnn")


def test_missing_file(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(
        CheckpointNotFoundError, match=r"no checkpoint file at .*model\.safetensors"
    ):
        load_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"in .* there is \['model\.pt'\]"):
        load_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointNotFoundError, match="does not exist either"):
        load_checkpoint(tmp_path / "nowhere" / "m.safetensors")
    with pytest.raises(CheckpointNotFoundError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file(tmp_path, suffix):
    model = build_model("mnist-cnn")
    path = tmp_path / f"m{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), path)
    else:
        save_checkpoint(path, model, meta=_meta())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match=r"m\.(safetensors|pt) is truncated or corrupt"):
        load_checkpoint(path, model="mnist-cnn")


def test_corrupt_weights_fail_the_checksum(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", build_model("mnist-cnn"), meta=_meta())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointFormatError, match="corrupt: its weights do not match the sha256"):
        load_checkpoint(path)


def test_empty_and_foreign_files(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointFormatError, match=r"empty\.pt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "empty.pt", model="mnist-cnn")
    (tmp_path / "notes.pt").write_text("these are not weights at all")
    with pytest.raises(CheckpointFormatError, match="is neither a safetensors nor a PyTorch file"):
        load_checkpoint(tmp_path / "notes.pt", model="mnist-cnn")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointFormatError, match=r"does not hold a state_dict"):
        load_checkpoint(tmp_path / "list.pt", model="mnist-cnn")


def test_keys_that_do_not_match_are_listed(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(build_model("mnist-cnn").state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r"\d+ missing key\(s\), e\.g\. \[") as exc:
        load_checkpoint(path, model="resnet18-cifar", model_args={"in_channels": 1})
    err = exc.value
    assert "9 unexpected key(s), e.g. ['conv1.bias', 'conv2.weight'" in str(err)
    assert "conv1.weight: file (32, 1, 3, 3) vs model (64, 1, 3, 3)" in str(err)
    assert len(err.missing) > 4
    assert "conv3.weight" in err.unexpected


def test_twin_weights_get_a_hint(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(build_model("mnist-cnn").state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="looks like the regular twin's weights"):
        load_checkpoint(path, model="mnist-cnn-dcnv2")


def test_shapes_that_do_not_match_are_listed(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(build_model("mnist-cnn", in_channels=3).state_dict(), path)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"1 shape mismatch\(es\), e\.g\. conv1\.weight: file \(32, 3, 3, 3\) vs model "
        r"\(32, 1, 3, 3\)",
    ):
        load_checkpoint(path, model="mnist-cnn")


def test_class_count_disagreeing_with_the_dataset(tmp_path):
    model = build_model("mnist-cnn", num_classes=7)
    meta = _meta(class_names=tuple("abcdefg"))
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta=meta)
    with pytest.raises(
        CheckpointClassCountError, match=r"predicts 7 classes \(a, b, c, d, e\.\.\.\) .* has 10"
    ) as exc:
        load_checkpoint(path, num_classes=10)
    assert (exc.value.checkpoint_classes, exc.value.expected_classes) == (7, 10)
    load_checkpoint(path, num_classes=7)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(
        CheckpointClassCountError, match=r"predicts 7 classes but the dataset has 10"
    ):
        load_checkpoint(tmp_path / "m.pt", model="mnist-cnn", num_classes=10)


def test_newer_format_and_bad_metadata(tmp_path):
    model = build_model("mnist-cnn")
    path = tmp_path / "m.safetensors"
    metadata = _meta(model_name="mnist-cnn", format_version=FORMAT_VERSION + 1).to_metadata()
    save_file(model.state_dict(), str(path), metadata=metadata)
    with pytest.raises(CheckpointMetadataError, match="newer than this geomrobust reads"):
        load_checkpoint(path)
    save_file(model.state_dict(), str(path), metadata={"geomrobust.model_name": "{oops"})
    with pytest.raises(CheckpointMetadataError, match="'geomrobust.model_name' is not valid JSON"):
        load_checkpoint(path)
    metadata = CheckpointMeta(model_name="mnist-cnn", model_args={"depth": 3}).to_metadata()
    save_file(model.state_dict(), str(path), metadata=metadata)
    with pytest.raises(CheckpointMetadataError, match=r"cannot build model 'mnist-cnn'.*no option"):
        load_checkpoint(path)


_USER_MODULE = """
import pathlib
pathlib.Path({marker!r}).touch()

import torch.nn as nn

def make_net(width=3, classes=2):
    return nn.Sequential(nn.Flatten(), nn.Linear(4, width), nn.ReLU(), nn.Linear(width, classes))
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's architecture module that leaves a marker file when it is imported."""
    name = f"user_nets_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(_USER_MODULE.format(marker=str(marker))))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def test_user_factory_round_trip(tmp_path, user_module):
    name, _ = user_module
    spec = f"{name}:make_net"
    import importlib

    factory = importlib.import_module(name).make_net
    model = _perturbed(factory(width=5))
    meta = CheckpointMeta(model_name=spec, model_args={"width": 5}, class_names=("no", "yes"))
    path = save_checkpoint(tmp_path / "user.safetensors", model, meta=meta)
    loaded, loaded_meta = load_checkpoint(path, model=spec)
    _assert_same_state(model, loaded)
    assert loaded_meta.model_args == {"width": 5}
    torch.save(model.state_dict(), tmp_path / "user.pt")
    loaded, _ = load_checkpoint(tmp_path / "user.pt", model=spec, model_args={"width": 5})
    _assert_same_state(model, loaded)


def test_code_named_in_a_file_is_not_imported(tmp_path, user_module):
    name, marker = user_module
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    meta = CheckpointMeta(model_name=f"{name}:make_net")
    path = save_checkpoint(tmp_path / "user.safetensors", model, meta=meta)
    with pytest.raises(CheckpointMetadataError, match="does not import code named in a file"):
        load_checkpoint(path)
    assert not marker.exists()
    assert name not in sys.modules
    # The same holds for a file that names a dangerous callable.
    evil = CheckpointMeta(model_name="os:system", model_args={"command": f"touch {marker}"})
    save_file(model.state_dict(), str(tmp_path / "evil.safetensors"), metadata=evil.to_metadata())
    with pytest.raises(CheckpointMetadataError, match="user architecture 'os:system'"):
        load_checkpoint(tmp_path / "evil.safetensors")
    assert not marker.exists()


def test_bad_factory_specs(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="cannot import 'no_such_pkg_xyz' for model"):
        load_checkpoint(path, model="no_such_pkg_xyz:make")
    with pytest.raises(ValueError, match=r"'json' has no attribute 'nope' for model 'json:nope'"):
        load_checkpoint(path, model="json:nope")
    with pytest.raises(ValueError, match="model spec must look like 'package.module:factory'"):
        load_checkpoint(path, model="json:a:b")
    with pytest.raises(TypeError, match="'json:__version__' is a str, not a callable factory"):
        load_checkpoint(path, model="json:__version__")
    with pytest.raises(ValueError, match="unknown model 'mnist'; valid: "):
        load_checkpoint(path, model="mnist")


def test_save_errors(tmp_path):
    model = build_model("mnist-cnn")
    with pytest.raises(CheckpointError, match=r"must end in \.safetensors; got .*m\.pt'\. Use"):
        save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(CheckpointError, match="meta.model_name is required for a model not made"):
        save_checkpoint(tmp_path / "m.safetensors", nn.Linear(2, 2))
    with pytest.raises(
        CheckpointError, match="class_names has 7 names but .*'num_classes'\\] is 10"
    ):
        save_checkpoint(tmp_path / "m.safetensors", model, meta=_meta(class_names=tuple("abcdefg")))
    with pytest.raises(CheckpointError, match="disagree with how the model was built"):
        save_checkpoint(
            tmp_path / "m.safetensors", model, meta=CheckpointMeta(model_args={"in_channels": 3})
        )
    meta_model = build_model("mnist-cnn", device="meta")
    with pytest.raises(CheckpointError, match="on the meta device"):
        save_checkpoint(tmp_path / "m.safetensors", meta_model)
    with pytest.raises(TypeError, match="meta must be a CheckpointMeta; got dict"):
        save_checkpoint(tmp_path / "m.safetensors", model, meta={"class_names": []})
    assert not list(tmp_path.iterdir()), "a failed save must leave nothing behind"


def test_meta_validation():
    with pytest.raises(ValueError, match="mean and std must be given together"):
        CheckpointMeta(mean=(0.5,))
    with pytest.raises(ValueError, match=r"std must be > 0; got \[0\.0\]"):
        CheckpointMeta(mean=(0.5,), std=(0.0,))
    with pytest.raises(ValueError, match=r"mean has 2 values; the model takes 3 channel\(s\)"):
        CheckpointMeta(input_shape=(3, 32, 32), mean=(0.5, 0.5), std=(0.2, 0.2))
    with pytest.raises(ValueError, match="training must be JSON-serialisable"):
        CheckpointMeta(training={"loss": nn.CrossEntropyLoss()})
    with pytest.raises(ValueError, match="training must be JSON-serialisable"):
        CheckpointMeta(training={"lr": float("nan")})
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\) of positive ints"):
        CheckpointMeta(input_shape=(28, 28))
    with pytest.raises(TypeError, match="class_names must be a sequence of str"):
        CheckpointMeta(class_names="0123456789")
    with pytest.raises(ValueError, match=r"unknown CheckpointMeta field\(s\) \['colour'\]"):
        CheckpointMeta.from_dict({"colour": "red"})
    meta = _meta(model_args={"num_classes": 10})
    with pytest.raises(TypeError, match="does not support item assignment"):
        meta.training["lr"] = 1.0
    assert CheckpointMeta.from_dict(meta.to_dict()) == meta
    assert pickle.loads(pickle.dumps(meta.to_dict())) == meta.to_dict()


# --- torchvision:NAME and timm:NAME architectures, state dicts saved by common trainers ---

TV_TEN = {"num_classes": 10}


@pytest.fixture(scope="module")
def resnet18_ten():
    """A torchvision resnet18 with 10 classes and random weights (no download)."""
    import torchvision

    torch.manual_seed(0)
    return _perturbed(torchvision.models.resnet18(num_classes=10)).eval()


def test_torchvision_state_dict_gives_the_same_logits(tmp_path, resnet18_ten):
    torch.save(resnet18_ten.state_dict(), tmp_path / "r18.pt")
    loaded, meta = load_checkpoint(
        tmp_path / "r18.pt", model="torchvision:resnet18", model_args=TV_TEN
    )
    _assert_same_state(resnet18_ten, loaded)
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), resnet18_ten(x))
    assert (meta.model_name, dict(meta.model_args)) == ("torchvision:resnet18", TV_TEN)
    assert meta.input_shape is None
    assert meta.unwrapped == ()


def _prefixed(prefix: str):
    return lambda sd: {prefix + k: v for k, v in sd.items()}


@pytest.mark.parametrize(
    ("wrap", "unwrapped"),
    [
        (_prefixed("module."), ("prefix 'module.'",)),
        (_prefixed("_orig_mod."), ("prefix '_orig_mod.'",)),
        (_prefixed("module._orig_mod."), ("prefix 'module.'", "prefix '_orig_mod.'")),
        (_prefixed("_orig_mod.module."), ("prefix '_orig_mod.'", "prefix 'module.'")),
        (lambda sd: {"state_dict": sd, "epoch": 3}, ("state_dict key 'state_dict'",)),
        (lambda sd: {"model": sd}, ("state_dict key 'model'",)),
        (
            lambda sd: {"model_state_dict": _prefixed("module.")(sd), "optimizer": {"lr": 0.1}},
            ("state_dict key 'model_state_dict'", "prefix 'module.'"),
        ),
    ],
    ids=["ddp", "compile", "ddp-compile", "compile-ddp", "state_dict", "model", "both"],
)
def test_trainer_wrappers_and_prefixes_are_removed(tmp_path, resnet18_ten, wrap, unwrapped):
    torch.save(wrap(resnet18_ten.state_dict()), tmp_path / "r18.pt")
    loaded, meta = load_checkpoint(
        tmp_path / "r18.pt", model="torchvision:resnet18", model_args=TV_TEN
    )
    _assert_same_state(resnet18_ten, loaded)
    assert meta.unwrapped == unwrapped


def test_prefixes_are_dropped_from_foreign_safetensors_only(tmp_path):
    model = _perturbed(build_model("mnist-cnn"))
    state = {f"_orig_mod.module.{k}": v for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "compiled.safetensors"))
    loaded, meta = load_checkpoint(tmp_path / "compiled.safetensors", model="mnist-cnn")
    _assert_same_state(model, loaded)
    assert meta.unwrapped == ("prefix '_orig_mod.'", "prefix 'module.'")
    # A file written by save_checkpoint holds the model's own names: nothing is touched.
    wrapper = nn.Sequential()
    wrapper.add_module("module", build_model("mnist-cnn"))
    meta = CheckpointMeta(model_name="wrapped:net")
    path = save_checkpoint(tmp_path / "own.safetensors", wrapper, meta=meta)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert all(k.startswith("module.") for k in f.keys())  # noqa: SIM118
    _, meta = load_checkpoint(path, model=wrapper)
    assert meta.unwrapped == ()


def test_unwrapped_is_not_written_to_files():
    meta = CheckpointMeta(model_name="mnist-cnn", unwrapped=["prefix 'module.'"])
    assert meta.unwrapped == ("prefix 'module.'",)
    assert "geomrobust.unwrapped" not in meta.to_metadata()
    assert CheckpointMeta.from_dict(meta.to_dict()) == meta
    metadata = {**meta.to_metadata(), "geomrobust.unwrapped": '["forged"]'}
    assert CheckpointMeta.from_metadata(metadata).unwrapped == ()
    with pytest.raises(TypeError, match="unwrapped must be a sequence of str; got 'module.'"):
        CheckpointMeta(unwrapped="module.")


def test_torchvision_class_count_error_names_num_classes(tmp_path, resnet18_ten):
    torch.save(resnet18_ten.state_dict(), tmp_path / "r18.pt")
    hint = (
        r"predicts 10 classes but the model was built for 1000; "
        r"pass model_args=\{'num_classes': 10\}"
    )
    with pytest.raises(CheckpointClassCountError, match=hint) as exc:
        load_checkpoint(tmp_path / "r18.pt", model="torchvision:resnet18")
    assert (exc.value.checkpoint_classes, exc.value.expected_classes) == (10, 1000)
    with pytest.raises(CheckpointClassCountError, match=hint):
        load_checkpoint(tmp_path / "r18.pt", model="torchvision:resnet18", num_classes=10)
    with pytest.raises(
        CheckpointClassCountError,
        match=r"predicts 10 classes but the dataset has 7 \(and the model was built for 1000\); "
        "use a checkpoint trained on this dataset",
    ) as exc:
        load_checkpoint(tmp_path / "r18.pt", model="torchvision:resnet18", num_classes=7)
    assert (exc.value.checkpoint_classes, exc.value.expected_classes) == (10, 7)


def test_torchvision_names_and_arguments_are_checked(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(
        ValueError,
        match=r"unknown model 'torchvision:resnet1000'; close matches: \[.*'torchvision:resnet101'",
    ):
        load_checkpoint(path, model="torchvision:resnet1000")
    with pytest.raises(ValueError, match=r"without pretrained weights .* remove \['weights'\]"):
        load_checkpoint(path, model="torchvision:resnet18", model_args={"weights": "DEFAULT"})
    with pytest.raises(
        CheckpointMetadataError,
        match=r"cannot build model 'torchvision:resnet18' with model_args=\{'depth': 3\}.*"
        "unexpected keyword argument 'depth'",
    ):
        load_checkpoint(path, model="torchvision:resnet18", model_args={"depth": 3})


def test_a_file_naming_a_torchvision_model_rebuilds_itself(tmp_path, resnet18_ten):
    meta = CheckpointMeta(model_name="torchvision:resnet18", model_args=TV_TEN)
    path = save_checkpoint(tmp_path / "r18.safetensors", resnet18_ten, meta=meta)
    loaded, loaded_meta = load_checkpoint(path, num_classes=10)
    _assert_same_state(resnet18_ten, loaded)
    assert loaded_meta.model_name == "torchvision:resnet18"


def test_timm_without_timm_gives_the_install_hint(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(1)}, tmp_path / "m.pt")
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(ValueError, match=r"needs timm, .*: pip install 'geomrobust\[timm\]'"):
        load_checkpoint(tmp_path / "m.pt", model="timm:resnet18")
    with pytest.raises(ValueError, match=r"timm:NAME takes a timm architecture name"):
        load_checkpoint(tmp_path / "m.pt", model="timm:hf-hub:org/model")


def test_timm_models_are_built_without_pretrained_weights(tmp_path, monkeypatch):
    import types

    calls = []

    def create_model(name, **kwargs):
        calls.append((name, kwargs))
        return nn.Linear(4, kwargs.get("num_classes", 1000))

    fake = types.ModuleType("timm")
    fake.create_model = create_model
    fake.list_models = lambda: ["resnet18", "resnet50", "vit_tiny_patch16_224"]
    fake.is_model = lambda name: name.split(".")[0] in fake.list_models()
    monkeypatch.setitem(sys.modules, "timm", fake)
    model = _perturbed(nn.Linear(4, 10))
    torch.save({"module.weight": model.weight, "module.bias": model.bias}, tmp_path / "m.pt")
    loaded, meta = load_checkpoint(tmp_path / "m.pt", model="timm:resnet18", model_args=TV_TEN)
    _assert_same_state(model, loaded)
    # Built twice: on the meta device to check the file's shapes, then for real.
    assert calls == [("resnet18", {"pretrained": False, "num_classes": 10})] * 2
    assert (meta.model_name, meta.unwrapped) == ("timm:resnet18", ("prefix 'module.'",))
    with pytest.raises(ValueError, match=r"unknown model 'timm:resnet1'; close matches: \["):
        load_checkpoint(tmp_path / "m.pt", model="timm:resnet1")
    with pytest.raises(ValueError, match=r"remove \['pretrained'\] from model_args"):
        load_checkpoint(tmp_path / "m.pt", model="timm:resnet18", model_args={"pretrained": True})
